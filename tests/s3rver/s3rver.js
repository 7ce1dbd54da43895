// Starts @20minutes/s3rver (which verifies SigV4 signatures) for the
// integration tests, on 127.0.0.1 only, with one bucket and the objects
// named on the command line, then creates READY_FILE.
//
//   node s3rver.js PORT DIRECTORY ACCESS_KEY SECRET BUCKET READY_FILE \
//       [KEY=FILE ...]
//
// The package ships no CLI of its own and asks for node 24 in its
// "engines"; its library runs on NodeSource's node 20 as it is, and on
// Debian 12's node 18 with the array methods of node 20 that its router
// (@koa/router 15) calls, defined below when missing.
'use strict'

for (const [name, value] of Object.entries({
  toReversed () { return this.slice().reverse() },
  toSorted (compare) { return this.slice().sort(compare) },
})) {
  if (!Array.prototype[name]) {
    Object.defineProperty(Array.prototype, name,
      { value, writable: true, configurable: true })
  }
}

const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, 'node_modules', '@20minutes', 's3rver')
const S3rver = require(root)
const AWSAccount = require(path.join(root, 'lib', 'models', 'account'))
const S3Object = require(path.join(root, 'lib', 'models', 'object'))

const [port, directory, accessKey, secret, bucket, readyFile, ...objects] =
  process.argv.slice(2)

if (!readyFile) {
  console.error('usage: node s3rver.js PORT DIRECTORY ACCESS_KEY SECRET ' +
                'BUCKET READY_FILE [KEY=FILE ...]')
  process.exit(2)
}

AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secret)

const server = new S3rver({
  port: Number(port),
  address: '127.0.0.1',
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
})

async function main () {
  await server.run()
  for (const spec of objects) {
    const at = spec.indexOf('=')
    const key = spec.slice(0, at)
    const file = spec.slice(at + 1)
    const size = fs.statSync(file).size
    // a stream: putObject resolves only once the object is on disk
    await server.store.putObject(new S3Object(bucket, key,
      fs.createReadStream(file),
      { 'content-type': 'application/pdf', 'content-length': String(size) }))
  }
  fs.writeFileSync(readyFile, 'ready\n')
}

process.on('SIGTERM', () => {
  server.close().then(() => process.exit(0), () => process.exit(1))
})

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
