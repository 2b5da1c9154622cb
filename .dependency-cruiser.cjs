// The layering of lib/, checked by `npm run lint`. Each folder may import
// only the folders below it; nothing imports in a circle.
//   core      plain values and decisions: addresses, answers, verdicts, the types all share
//   batv      signed bounces: the tag format, signing and checking, the keys file
//   settings  config/backscatter.ini read into core's types, checked once
//   zonefile  rbldnsd zone files: parsing, loading from disk
//   dns       the resolver, the answer cache, zone health, the checker over DNS and files
//   ledger    the sent-mail ledger: in reply/, mail machines send in reply, its kind and the
//             Message-IDs it refers to (core only); beside it, keyed hashes in Redis
//   selfcheck this host's own IPs: where they are found, the watch of them on the zones
//   metrics   Prometheus counters and the /metrics endpoint
//   haraka    the Haraka glue: hooks, envelope rewrites, start-up lines
//   cli       the haraka-backscatter command
const LAYERS = ['core', 'batv', 'settings', 'zonefile', 'dns', 'ledger', 'selfcheck', 'metrics']
const TOP = ['haraka', 'cli']

const below = (i) => LAYERS.slice(0, i).join('|')
const layerRules = LAYERS.map((layer, i) => ({
  name: `${layer}-imports-only-below`,
  comment: `lib/${layer} may import only ${below(i) || 'nothing else in lib/'}`,
  severity: 'error',
  from: { path: `^lib/${layer}/` },
  to: {
    path: '^lib/',
    pathNot: `^lib/(${[layer, ...LAYERS.slice(0, i)].join('|')})/`,
  },
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No module imports itself through others.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'reply-reads-mail-only',
      comment: 'lib/ledger/reply reads mail and knows nothing of Redis: it may import only lib/core.',
      severity: 'error',
      from: { path: '^lib/ledger/reply/' },
      to: { path: '^lib/', pathNot: '^lib/(core|ledger/reply)/' },
    },
    {
      name: 'glue-and-command-apart',
      comment: 'The Haraka glue and the command share the layers below, never each other.',
      severity: 'error',
      from: { path: `^lib/(${TOP.join('|')})/` },
      to: { path: `^lib/(${TOP.join('|')})/`, pathNot: ['^lib/$1/'] },
    },
    {
      name: 'nothing-at-the-top',
      comment: 'Every module lives in the folder of its concern.',
      severity: 'error',
      from: { path: '^lib/[^/]+\\.ts$' },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
}
