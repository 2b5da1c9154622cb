'use strict'

// Haraka's loader requires this file and copies every enumerable export onto
// the plugin instance, so the compiled hooks become methods of the plugin.
module.exports = require('./dist/haraka/plugin.js')
