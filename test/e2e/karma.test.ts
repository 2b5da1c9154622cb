// End to end with haraka-plugin-karma scoring the plugin's results through the
// README's [result_awards] line. Karma needs Redis: a private redis-server runs
// on a loopback port for the test.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import {
  headerOf,
  installedVersion,
  LOCAL_DOMAIN,
  makeWorkDir,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { findRedisServer, startRedis, type RedisServer } from '../support/redis'
import { queuedId, SmtpClient } from '../support/smtp'

const LISTED = '45.3.0.1'
const UNLISTED = '45.3.0.9'

/** The README's line for config/karma.ini, verbatim. */
export const RESULT_AWARD =
  'backscatter_fail = backscatter | fail | equals | ips.backscatterer.org | -5 | Backscatter: bounce from a host listed on ips.backscatterer.org'

const KARMA_INI = `[result_awards]
${RESULT_AWARD}

[deny_excludes]
; karma's default list, plus backscatter: its per-recipient refusals are not
; turned into karma penalties.
plugins = access, attachment, clamd, headers, helo.checks, limit, rspamd, spamassassin, send_email, tls, backscatter
`

const redisBinary = findRedisServer()
const skip = redisBinary
  ? false
  : 'redis-server is not installed (Debian package redis-server); karma needs Redis'

describe('haraka-plugin-karma scores a listed bounce with the README award', { skip }, () => {
  let work: string
  let zone: ZoneServer
  let redis: RedisServer
  let haraka: Haraka
  const clients: SmtpClient[] = []

  // Karma decides at connect time (connect_init) whether to follow a connection,
  // and skips 127.0.0.1; an address given later by XCLIENT comes too late for
  // its result awards. So this front end presents the address with the PROXY
  // protocol, which Haraka applies before connect_init.
  async function connectAs(ip: string): Promise<SmtpClient> {
    const c = await SmtpClient.connect(haraka.port, { proxy: ip })
    clients.push(c)
    assert.equal(c.greeting?.code, 220, c.transcript.join('\n'))
    assert.equal((await c.ehlo()).code, 250)
    return c
  }

  before(async () => {
    work = makeWorkDir('e2e-karma')
    zone = await startZone({ listed: [LISTED] })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    redis = await startRedis(redisBinary as string)
    // As for any npm plugin, karma and the redis plugin it needs are installed in
    // the deployment. (Without haraka-plugin-redis there, Haraka would take the
    // deployment's node_modules/redis, the Redis client, for the plugin "redis".)
    const dep = await sharedDeployment(work, [
      `haraka-plugin-karma@${installedVersion('haraka-plugin-karma')}`,
      `haraka-plugin-redis@${installedVersion('haraka-plugin-redis')}`,
    ])
    const redisIni = `[server]\nhost = 127.0.0.1\nport = ${redis.port}\n\n[pubsub]\nhost = 127.0.0.1\nport = ${redis.port}\n`
    // Trust 127.0.0.1 as a front end that speaks the PROXY protocol.
    const connectionIni = dep.readConfig('connection.ini').replace(/^hosts\[\] =\s*$/m, 'hosts[] = 127.0.0.1')
    assert.match(connectionIni, /^hosts\[\] = 127\.0\.0\.1$/m)
    haraka = await startHaraka(dep, {
      plugins: ['redis', 'karma', 'backscatter', 'rcpt_to.in_host_list', 'queue/test', 'e2e_results'],
      backscatterIni: `[dns]\nservers = ${zone.server}\n`,
      files: {
        'redis.ini': redisIni,
        'karma.ini': KARMA_INI,
        'connection.ini': connectionIni,
      },
    })
    // Karma follows connections only once the redis plugin has connected.
    await haraka.waitForLog(/\[karma\] using server\.notes\.redis/)
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await redis?.close()
    await zone?.close()
    removeWorkDir(work)
  })

  test('a listed bounce earns backscatter_fail (-5); the bounce to postmaster carries it in X-Haraka-Karma', async () => {
    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [`someone@${LOCAL_DOMAIN}`, `postmaster@${LOCAL_DOMAIN}`] })
    assert.equal(r.mail.code, 250)
    assert.deepEqual(
      r.rcpt.map((x) => x.code),
      [550, 250],
      r.rcpt.map((x) => x.raw).join('\n'),
    )
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, 'X-Haraka-Backscatter'), `score=5; listed=${ZONE}; ip=${LISTED}`)
    const karma = headerOf(msg, 'X-Haraka-Karma') ?? ''
    assert.match(karma, /awards: backscatter_fail/, `X-Haraka-Karma: ${karma}`)
    // Only the award counts: the 550 for someone@ is not turned into a -2 penalty.
    assert.match(karma, /score: -5(,|$)/, `X-Haraka-Karma: ${karma}`)
    await c.quit()
    // Karma logs its results at disconnect.
    const logged = await haraka.waitForLog(/\[karma\] .*awards: backscatter_fail/)
    assert.match(logged[0] ?? '', /score: -5/)
  })

  test('an unlisted bounce earns no award', async () => {
    const c = await connectAs(UNLISTED)
    const r = await c.transaction({ from: '', to: [`someone@${LOCAL_DOMAIN}`] })
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, 'X-Haraka-Backscatter'), `score=0; listed=none; ip=${UNLISTED}`)
    const karma = headerOf(msg, 'X-Haraka-Karma')
    assert.ok(karma !== undefined, 'karma ran')
    assert.doesNotMatch(karma, /backscatter_fail/)
    await c.quit()
  })

  test("Haraka's log has no uncaught error", async () => {
    for (const c of clients) c.close()
    await haraka.waitForLog(/\[core\] disconnect ip=/, { count: clients.length })
    const bad = uncaughtErrors(haraka.log())
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
