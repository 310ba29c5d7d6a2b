// kafkajs consumer-group driver for Gregor's black-box group tests.
//
// Reads one JSON request from stdin:
//   {"brokers": [...], "steps": [{"op": ...}, ...]}
// and prints one line: KJS_RESULT [{"ok": ...} | {"error": {...}}, ...]
//
// ops:
//   consume   {groupId, topic, expected, timeoutMs, sessionTimeout, members}
//             runs `members` kafkajs Consumers in one group until together they
//             have `expected` messages (commits after each message); returns
//             {messages: [{member, partition, offset, value}], assignments: {member: [partitions]}}
//   listGroups, describeGroups {groupIds}, fetchOffsets {groupId, topics},
//   deleteGroups {groupIds}     the admin client
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', c => chunks.push(c))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString()))
    process.stdin.on('error', reject)
  })
}

async function consume(kafka, step) {
  const n = step.members || 1
  const messages = []
  const assignments = {}
  const consumers = []
  const deadline = Date.now() + (step.timeoutMs || 30000)
  try {
    for (let i = 0; i < n; i++) {
      const c = kafka.consumer({
        groupId: step.groupId,
        sessionTimeout: step.sessionTimeout || 6000,
        heartbeatInterval: 500,
        rebalanceTimeout: 10000,
        maxWaitTimeInMs: 100,
      })
      consumers.push(c)
      const member = i
      c.on(c.events.GROUP_JOIN, e => {
        assignments[member] = (e.payload.memberAssignment[step.topic] || []).slice().sort()
      })
      await c.connect()
      await c.subscribe({ topic: step.topic, fromBeginning: true })
      await c.run({
        autoCommit: true,
        autoCommitInterval: 100,
        eachMessage: async ({ partition, message }) => {
          messages.push({ member, partition, offset: message.offset, value: message.value.toString() })
        },
      })
    }
    const settled = () => {
      if (messages.length < step.expected) return false
      // Every member has its share of the partitions (the last rebalance is done).
      const parts = Object.values(assignments).flat()
      return Object.keys(assignments).length === n && (step.partitions === undefined || parts.length === step.partitions)
    }
    while (!settled()) {
      if (Date.now() > deadline)
        throw new Error(`timed out with ${messages.length}/${step.expected} messages, assignments ${JSON.stringify(assignments)}`)
      await new Promise(r => setTimeout(r, 50))
    }
    await new Promise(r => setTimeout(r, 300)) // let the last auto-commit go out
  } finally {
    for (const c of consumers) await c.disconnect()
  }
  return { messages, assignments }
}

async function runStep(kafka, step) {
  if (step.op === 'consume') return consume(kafka, step)
  const admin = kafka.admin()
  await admin.connect()
  try {
    switch (step.op) {
      case 'listGroups':
        return await admin.listGroups()
      case 'describeGroups': {
        const r = await admin.describeGroups(step.groupIds)
        // Buffers do not survive JSON: report their sizes.
        for (const g of r.groups)
          for (const m of g.members) {
            m.memberMetadata = m.memberMetadata.length
            m.memberAssignment = m.memberAssignment.length
          }
        return r
      }
      case 'fetchOffsets':
        return await admin.fetchOffsets({ groupId: step.groupId, topics: step.topics })
      case 'deleteGroups':
        return await admin.deleteGroups(step.groupIds)
      default:
        throw new Error(`unknown op ${step.op}`)
    }
  } finally {
    await admin.disconnect()
  }
}

async function main() {
  const req = JSON.parse(await readStdin())
  const kafka = new Kafka({
    clientId: 'gregor-bb-groups',
    brokers: req.brokers,
    logLevel: logLevel.WARN,
    retry: { retries: 8, initialRetryTime: 100 },
  })
  const results = []
  for (const step of req.steps) {
    try {
      results.push({ ok: await runStep(kafka, step) })
    } catch (e) {
      results.push({ error: { name: e.name, message: e.message, type: e.type } })
    }
  }
  process.stdout.write('KJS_RESULT ' + JSON.stringify(results) + '\n')
}

main().then(
  () => process.exit(0),
  e => {
    process.stderr.write(String(e && e.stack) + '\n')
    process.exit(1)
  }
)
