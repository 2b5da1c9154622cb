// End to end with SpamAssassin: Debian's spamd (Debian's rules, local tests
// only) on a loopback port, the rule file the package ships, installed as
// docs/results.md says, and Haraka's spamassassin plugin after backscatter in
// score mode. The delivered message (queue/test) must show the rule's hit.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { BatvKey, signAddress } from '../../lib/batv/sign'

import {
  connectWithXclient,
  headerOf,
  installedVersion,
  LOCAL_DOMAIN,
  makeWorkDir,
  removeWorkDir,
  REPO,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { queuedId, sampleMessage, type SmtpClient } from '../support/smtp'
import { findSpamAssassin, startSpamd, type Spamd } from '../support/spamd'

const LISTED = '45.4.0.1'
const UNLISTED = '45.4.0.9'
const IPV6 = '2001:470::9'
const RULE = 'HARAKA_BACKSCATTER'
const BATV_RULE = 'HARAKA_BACKSCATTER_BATV'
const SECRET = 'e2e-spamassassin-secret'
const user = (name: string): string => `${name}@${LOCAL_DOMAIN}`

/** The local.cf line docs/results.md gives for per-rule scores in X-Spam-Status, verbatim. */
function documentedStatusLine(): string {
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'results.md'), 'utf8')
  const line = /^add_header all Status .*$/m.exec(doc)?.[0]
  assert.ok(line, 'docs/results.md shows an add_header all Status line')
  return line
}

/** The rules in X-Spam-Status with their scores, e.g. { HARAKA_BACKSCATTER: 5, … }. */
function testsWithScores(status: string): Record<string, number> {
  // SpamAssassin folds the list after a comma, sometimes with no space before autolearn=.
  const list = /\btests=(.*?)\s*(?:autolearn=|version=|$)/.exec(status)?.[1] ?? ''
  const scores: Record<string, number> = {}
  for (const item of list.replace(/\s+/g, '').split(',').filter(Boolean)) {
    const [name, score] = item.split('=')
    if (name) scores[name] = Number(score)
  }
  return scores
}

const programs = findSpamAssassin()
const skip =
  'missing' in programs
    ? `${programs.missing}; the SpamAssassin rule is tested where spamassassin and spamd are installed`
    : false

describe('SpamAssassin scores a listed bounce with the shipped contrib/backscatter.cf', { skip }, () => {
  let work: string
  let zone: ZoneServer
  let spamd: Spamd
  let haraka: Haraka
  const clients: SmtpClient[] = []

  async function connectAs(ip: string): Promise<SmtpClient> {
    const c = await connectWithXclient(haraka.port, ip)
    clients.push(c)
    return c
  }

  /** One message from `ip`, accepted for every recipient; the delivered copy and its spamd scan. */
  async function deliver(
    ip: string,
    from: string,
    data?: string,
    to = [user('someone')],
  ): Promise<{ message: string; status: string; scores: Record<string, number>; spamdLine: string }> {
    const c = await connectAs(ip)
    const r = await c.transaction({ from, to, data: data ?? sampleMessage(from, to) })
    assert.equal(r.mail.code, 250, r.mail.raw)
    assert.equal(r.rcpt[0]?.code, 250, `score mode accepts: ${r.rcpt[0]?.raw}`)
    assert.equal(r.data?.code, 250, r.data?.raw)
    await c.quit()
    const message = await haraka.message(queuedId(r.data) ?? 'none')
    const status = headerOf(message, 'X-Spam-Status')
    assert.ok(status, `spamd scanned the message and the plugin added X-Spam-Status:\n${message}`)
    // spamd's own log line for this message: what spamd saw, whatever Haraka did with the answer.
    const mid = headerOf(message, 'Message-ID') ?? ''
    const escaped = mid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const spamdLine = await spamd.waitForLog(new RegExp(`spamd: result: .*mid=${escaped}`))
    return { message, status, scores: testsWithScores(status), spamdLine }
  }

  before(async () => {
    work = makeWorkDir('e2e-spamassassin')
    zone = await startZone({ listed: [LISTED] })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    // Haraka's spamassassin plugin is an npm package (an optional dependency of
    // Haraka); installed in the deployment, like any npm plugin.
    const dep = await sharedDeployment(work, [
      `haraka-plugin-spamassassin@${installedVersion('haraka-plugin-spamassassin')}`,
    ])
    // The rule file as the package ships it: copied from the installed package.
    const shipped = path.join(
      dep.dir,
      'node_modules',
      'haraka-plugin-backscatter',
      'contrib',
      'backscatter.cf',
    )
    assert.ok(fs.existsSync(shipped), `${shipped} is in the installed package`)
    spamd = await startSpamd(programs as Exclude<typeof programs, { missing: string }>, {
      'backscatter.cf': fs.readFileSync(shipped, 'utf8'),
      // No Bayes database in a test: nothing to learn from, nothing written.
      'local.cf': `use_bayes 0\n${documentedStatusLine()}\n`,
    })
    console.log(`spamd on ${spamd.socket}, site config ${spamd.siteConfigDir}`)
    haraka = await startHaraka(dep, {
      plugins: [
        'xclient',
        'backscatter',
        'rcpt_to.in_host_list',
        '# after backscatter: its header must be on the message before spamd sees it',
        'spamassassin',
        'queue/test',
        'e2e_results',
      ],
      // Signed bounces on for the local domain; untagged bounces are recorded as missing, not scored.
      backscatterIni: [
        `[main]\naction = score\n`,
        `[dns]\nservers = ${zone.server}\n`,
        `[batv]\ndomains = ${LOCAL_DOMAIN}\n`,
      ].join('\n'),
      files: {
        'backscatter.keys': `1 = ${SECRET}\n`,
        'spamassassin.ini': `spamd_socket = ${spamd.socket}\n`,
      },
    })
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await spamd?.close()
    await zone?.close()
    removeWorkDir(work)
  })

  test(`a listed bounce reaches spamd with the header and shows ${RULE}=5 in X-Spam-Status`, async () => {
    const d = await deliver(LISTED, '')
    assert.equal(
      headerOf(d.message, 'X-Haraka-Backscatter'),
      `score=5; listed=${ZONE}; batv=missing; ip=${LISTED}`,
    )
    assert.equal(d.scores[RULE], 5, `X-Spam-Status: ${d.status}`)
    // The total counts it: the other rules that hit, plus 5 (the total is rounded to 0.1).
    const total = Number(/\bscore=(-?[\d.]+)/.exec(d.status)?.[1])
    const others = Object.entries(d.scores)
      .filter(([name]) => name !== RULE)
      .reduce((sum, [, s]) => sum + s, 0)
    assert.ok(Math.abs(total - (others + 5)) <= 0.06, `X-Spam-Status: ${d.status}`)
    assert.match(d.spamdLine, new RegExp(`\\b${RULE}\\b`), d.spamdLine)
  })

  test(`an unlisted bounce is scanned and does not hit ${RULE}`, async () => {
    const d = await deliver(UNLISTED, '')
    assert.equal(
      headerOf(d.message, 'X-Haraka-Backscatter'),
      `score=0; listed=none; batv=missing; ip=${UNLISTED}`,
    )
    assert.equal(d.scores[RULE], undefined, `X-Spam-Status: ${d.status}`)
    assert.equal(d.scores[BATV_RULE], undefined, `a missing tag is not scored: ${d.status}`)
    assert.doesNotMatch(d.spamdLine, new RegExp(`\\b${RULE}\\b`))
  })

  test(`a bounce whose zone gave no answer (listed=unknown) does not hit ${RULE}`, async () => {
    // ips.backscatterer.org lists IPv4 only: an IPv6 client is not looked up there.
    const d = await deliver(IPV6, '')
    assert.equal(
      headerOf(d.message, 'X-Haraka-Backscatter'),
      `score=0; listed=unknown; unchecked=${ZONE}; batv=missing; ip=${IPV6}`,
    )
    assert.equal(d.scores[RULE], undefined, `X-Spam-Status: ${d.status}`)
    assert.doesNotMatch(d.spamdLine, new RegExp(`\\b${RULE}\\b`))
  })

  /** The local user's address signed with the deployment's key, as the plugin signs at MAIL. */
  function signedUser(): string {
    const out = signAddress(user('someone'), BatvKey.create(1, SECRET) as BatvKey, 7, Date.now())
    assert.ok(out.ok)
    return out.address
  }

  test(`a bounce to a forged signed return path shows ${BATV_RULE}=5; a valid tag does not`, async () => {
    const valid = signedUser()
    // One hex digit of the signature changed: the tag no longer matches.
    const forged = valid.replace(
      /^(prvs=\d{4})(.)/,
      (_, head: string, c: string) => `${head}${c === '0' ? '1' : '0'}`,
    )
    assert.notEqual(forged, valid)

    const bad = await deliver(UNLISTED, '', undefined, [forged])
    assert.equal(
      headerOf(bad.message, 'X-Haraka-Backscatter'),
      `score=0; listed=none; batv=invalid; ip=${UNLISTED}`,
    )
    assert.equal(bad.scores[BATV_RULE], 5, `X-Spam-Status: ${bad.status}`)
    assert.equal(bad.scores[RULE], undefined, `not listed: ${bad.status}`)
    assert.match(bad.spamdLine, new RegExp(`\\b${BATV_RULE}\\b`), bad.spamdLine)

    const good = await deliver(UNLISTED, '', undefined, [valid])
    assert.equal(
      headerOf(good.message, 'X-Haraka-Backscatter'),
      `score=0; listed=none; batv=valid; ip=${UNLISTED}`,
    )
    assert.equal(good.scores[BATV_RULE], undefined, `X-Spam-Status: ${good.status}`)
    assert.doesNotMatch(good.spamdLine, new RegExp(`\\b${BATV_RULE}\\b`))
  })

  test(`ordinary mail from a listed host is scanned and does not hit ${RULE}`, async () => {
    const d = await deliver(LISTED, 'alice@sender.e2e.test')
    assert.equal(headerOf(d.message, 'X-Haraka-Backscatter'), undefined)
    assert.equal(d.scores[RULE], undefined, `X-Spam-Status: ${d.status}`)
    assert.doesNotMatch(d.spamdLine, new RegExp(`\\b${RULE}\\b`))
  })

  test(`a header the sender forged is removed before spamd sees it: no ${RULE}`, async () => {
    const from = 'alice@sender.e2e.test'
    const forged = sampleMessage(from, [user('someone')]).replace(
      /^From: /m,
      `X-Haraka-Backscatter: score=5; listed=${ZONE}; ip=192.0.2.1\r\nFrom: `,
    )
    const d = await deliver(UNLISTED, from, forged)
    assert.equal(headerOf(d.message, 'X-Haraka-Backscatter'), undefined, d.message)
    assert.equal(d.scores[RULE], undefined, `X-Spam-Status: ${d.status}`)
    assert.doesNotMatch(d.spamdLine, new RegExp(`\\b${RULE}\\b`))
  })

  test("Haraka's log has no uncaught error", async () => {
    for (const c of clients) c.close()
    await haraka.waitForLog(/\[core\] disconnect ip=/, { count: clients.length })
    const bad = uncaughtErrors(haraka.log())
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
