/**
 * What `promise` settles with, or `late` when `ms` pass first. The promise is
 * not cancelled: it settles on its own later, and its outcome is ignored. A
 * rejection before the deadline still rejects.
 */
export function settleWithin<T, L>(promise: Promise<T>, ms: number, late: L): Promise<T | L> {
  return new Promise<T | L>((resolve, reject) => {
    const timer = setTimeout(resolve, Math.max(0, ms), late)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}
