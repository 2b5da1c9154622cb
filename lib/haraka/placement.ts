/**
 * Plugins whose hook_rcpt can answer OK for a recipient. Haraka stops the rcpt
 * hook chain at the first OK, so a backscatter plugin listed after one of them
 * never sees the recipients it accepts.
 */
const RECIPIENT_PLUGINS = [
  /^rcpt_to\./,
  /^(haraka-plugin-)?(qmail-deliverable|rcpt-ldap|rcpt-postgresql|recipient-routes)$/,
]

/** The recipient-accepting plugins listed before `self` in config/plugins. */
export function recipientPluginsBefore(plugins: readonly string[], self = 'backscatter'): string[] {
  const names = plugins.map((p) => p.trim()).filter((p) => p !== '' && !p.startsWith('#'))
  const index = names.findIndex((p) => p === self || p === `haraka-plugin-${self}`)
  if (index < 0) return []
  return names.slice(0, index).filter((p) => RECIPIENT_PLUGINS.some((re) => re.test(p)))
}
