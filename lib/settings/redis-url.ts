// The Redis URL as settings check it and log lines show it.

/** Why `text` is no Redis URL node-redis can use, in words that never quote it (it may hold a password). */
export function redisUrlProblem(text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'not a URL such as redis://127.0.0.1:6379'
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'not a redis:// or rediss:// URL'
  if (url.hostname === '') return 'no host in the URL'
  if (!/^\/?(\d+)?$/.test(url.pathname)) return 'the path of the URL is not a database number'
  return undefined
}

/** The URL with its password replaced by `***`, for log lines and health rows. */
export function shownUrl(text: string): string {
  try {
    const url = new URL(text)
    if (url.password !== '') url.password = '***'
    return url.toString().replace(/\/$/, '')
  } catch {
    return '(invalid URL)'
  }
}
