// kafkajs admin driver for the config/partition/record black-box tests.
// Reads {"brokers": [...], "steps": [{"op": ..., ...}]} on stdin, prints one
// line: KJS_RESULT [{"ok": ...} | {"error": {...}}, ...].
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

async function runStep(admin, step) {
  switch (step.op) {
    case 'createTopics':
      return await admin.createTopics({ topics: step.topics, waitForLeaders: true, timeout: 10000 })
    case 'describeConfigs':
      return await admin.describeConfigs({ resources: step.resources, includeSynonyms: !!step.includeSynonyms })
    case 'alterConfigs':
      return await admin.alterConfigs({ resources: step.resources, validateOnly: !!step.validateOnly })
    case 'createPartitions':
      await admin.createPartitions({ topicPartitions: step.topicPartitions, timeout: 10000 })
      return true
    case 'deleteTopicRecords':
      // kafkajs needs the topic's metadata loaded first (it does not fetch it itself).
      await admin.fetchTopicMetadata({ topics: [step.topic] })
      await admin.deleteTopicRecords({ topic: step.topic, partitions: step.partitions })
      return true
    case 'fetchTopicOffsets':
      return await admin.fetchTopicOffsets(step.topic)
    case 'fetchTopicMetadata':
      return await admin.fetchTopicMetadata({ topics: step.topics })
    case 'describeCluster':
      return await admin.describeCluster()
    case 'alterPartitionReassignments':
      await admin.alterPartitionReassignments({ topics: step.topics, timeout: 10000 })
      return true
    case 'listPartitionReassignments':
      return await admin.listPartitionReassignments({ topics: step.topics || null, timeout: 10000 })
    default:
      throw new Error(`unknown op ${step.op}`)
  }
}

function describeError(e) {
  return {
    name: e.name,
    message: e.message,
    type: e.type,
    code: e.code,
    cause: e.cause ? describeError(e.cause) : undefined,
    errors: Array.isArray(e.errors) ? e.errors.map(describeError) : undefined,
  }
}

async function main() {
  const req = JSON.parse(await readStdin())
  const kafka = new Kafka({
    clientId: 'gregor-bb-kafkajs-admin',
    brokers: req.brokers,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.NOTHING,
  })
  const admin = kafka.admin()
  await admin.connect()
  const results = []
  try {
    for (const step of req.steps) {
      try {
        results.push({ ok: await runStep(admin, step) })
      } catch (e) {
        results.push({ error: describeError(e) })
      }
    }
  } finally {
    await admin.disconnect()
  }
  await new Promise(resolve => process.stdout.write('KJS_RESULT ' + JSON.stringify(results) + '\n', resolve))
}

const watchdog = setTimeout(() => {
  process.stderr.write('kjs_admin.js: watchdog fired after 80 s\n')
  process.exit(3)
}, 80000)
watchdog.unref()

main().then(
  () => process.exit(0),
  e => {
    process.stderr.write(`kjs_admin.js failed: ${e && e.stack}\n`)
    process.exit(2)
  }
)
