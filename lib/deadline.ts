/**
 * What `promise` settles with, or `late` when `ms` pass first. The promise is
 * not cancelled: it settles on its own later, and its outcome is ignored. A
 * rejection before the deadline still rejects.
 */
export async function settleWithin<T, L>(promise: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<L>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), late)))
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}
