import test from 'ava'

// The project pins Node 24 as an npm dependency; every npm script must run on it, not the system Node.
test('tests run on the pinned Node 24', (t) => {
  t.regex(process.version, /^v24\./)
})
