// kafkajs driver for Gregor's black-box tests.
//
// Reads one JSON request from stdin:
//   {"brokers": ["127.0.0.1:PORT"], "steps": [{"op": ..., ...}, ...]}
// runs the steps in order and prints one line
//   KJS_RESULT [{"ok": ...} | {"error": {...}}, ...]
// Binary keys, values and header values travel as base64 (null stays null).
//
// kafkajs's Consumer needs consumer groups, so "fetch" uses kafkajs's own
// cluster/broker layer (the code its Consumer runs underneath): Metadata, then
// Fetch v11 straight to the partition leader, decoded by kafkajs.
'use strict'

const { Kafka, Partitioners, CompressionTypes, logLevel } = require('kafkajs')

const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const unb64 = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))

function stderrLogCreator() {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
  }
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', c => chunks.push(c))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString()))
    process.stdin.on('error', reject)
  })
}

function toMessage(m) {
  const msg = { key: unb64(m.key), value: unb64(m.value) }
  if (m.headers && m.headers.length) {
    const headers = {}
    for (const [k, v] of m.headers) {
      const val = unb64(v)
      if (headers[k] === undefined) headers[k] = val
      else if (Array.isArray(headers[k])) headers[k].push(val)
      else headers[k] = [headers[k], val]
    }
    msg.headers = headers
  }
  if (m.timestamp !== undefined && m.timestamp !== null) msg.timestamp = String(m.timestamp)
  if (m.partition !== undefined && m.partition !== null) msg.partition = m.partition
  return msg
}

function flattenHeaders(h) {
  const out = []
  for (const k of Object.keys(h || {})) {
    const v = h[k]
    if (Array.isArray(v)) for (const x of v) out.push([k, b64(x)])
    else out.push([k, b64(v)])
  }
  return out
}

function createCluster(kafka) {
  // The Kafka client keeps its cluster factory under a private symbol.
  const sym = Object.getOwnPropertySymbols(kafka).find(
    s => s.description === 'private:Kafka:createCluster'
  )
  if (!sym) throw new Error('kafkajs internals changed: no createCluster symbol')
  return kafka[sym]({ metadataMaxAge: 300000, allowAutoTopicCreation: false })
}

async function fetchRecords(kafka, step) {
  const cluster = createCluster(kafka)
  await cluster.connect()
  try {
    await cluster.addTargetTopic(step.topic)
    const deadline = Date.now() + (step.timeoutMs || 20000)
    const out = []
    const next = {}
    const atEnd = {}
    for (const p of step.partitions) {
      next[p] = BigInt(step.fromOffset || 0)
      atEnd[p] = false
    }
    const enough = () =>
      step.expected === undefined || step.expected === null || out.length >= step.expected
    while (Date.now() < deadline) {
      let got = 0
      for (const partition of step.partitions) {
        const leaders = cluster.findLeaderForPartitions(step.topic, [partition])
        const nodeId = Object.keys(leaders)[0]
        if (nodeId === undefined) throw new Error(`no leader for ${step.topic}/${partition}`)
        const broker = await cluster.findBroker({ nodeId })
        const resp = await broker.fetch({
          replicaId: -1,
          isolationLevel: 0,
          maxWaitTime: 100,
          minBytes: 1,
          maxBytes: 10485760,
          topics: [
            {
              topic: step.topic,
              partitions: [{ partition, fetchOffset: next[partition].toString(), maxBytes: 4194304 }],
            },
          ],
        })
        for (const t of resp.responses) {
          for (const p of t.partitions) {
            if (p.errorCode) throw new Error(`fetch error ${p.errorCode} on ${t.topicName}/${p.partition}`)
            for (const m of p.messages) {
              const off = BigInt(m.offset)
              if (off < next[partition]) continue
              next[partition] = off + 1n
              if (m.isControlRecord) continue
              got++
              out.push({
                partition,
                offset: m.offset,
                timestamp: m.timestamp,
                key: b64(m.key),
                value: b64(m.value),
                headers: flattenHeaders(m.headers),
              })
            }
            atEnd[partition] = next[partition] >= BigInt(p.highWatermark)
          }
        }
      }
      if (step.partitions.every(p => atEnd[p]) && enough()) return out
      if (got === 0) await new Promise(r => setTimeout(r, 20))
    }
    throw new Error(
      `fetch timed out with ${out.length} records (expected ${step.expected}), next offsets ${JSON.stringify(
        Object.fromEntries(Object.entries(next).map(([k, v]) => [k, v.toString()]))
      )}`
    )
  } finally {
    await cluster.disconnect()
  }
}

async function runStep(kafka, step) {
  switch (step.op) {
    case 'produce': {
      const opts = {
        allowAutoTopicCreation: step.allowAutoTopicCreation !== false,
        createPartitioner:
          step.partitioner === 'legacy' ? Partitioners.LegacyPartitioner : Partitioners.DefaultPartitioner,
      }
      // idempotent: kafkajs's idempotent producer (InitProducerId, sequence
      // numbers; it wants one request in flight).
      if (step.idempotent) Object.assign(opts, { idempotent: true, maxInFlightRequests: 1 })
      const producer = kafka.producer(opts)
      await producer.connect()
      try {
        // sends > 1: the messages go in that many send() calls, one after another.
        const sends = step.sends || 1
        const per = Math.ceil(step.messages.length / sends)
        const results = []
        for (let i = 0; i < step.messages.length; i += per) {
          results.push(
            ...(await producer.send({
              topic: step.topic,
              acks: step.acks === undefined ? -1 : step.acks,
              timeout: 10000,
              compression: step.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
              messages: step.messages.slice(i, i + per).map(toMessage),
            }))
          )
        }
        return results
      } finally {
        await producer.disconnect()
      }
    }
    case 'fetch':
      return await fetchRecords(kafka, step)
    case 'transaction': {
      // One transaction of a transactional producer: send() each of
      // step.sends ({topic, messages}), then sendOffsets (step.offsets:
      // {groupId, topics: [{topic, partitions: [{partition, offset}]}]}) if
      // given, then commit, or abort when step.abort.
      const producer = kafka.producer({
        transactionalId: step.transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: step.transactionTimeout || 60000,
        createPartitioner: Partitioners.DefaultPartitioner,
      })
      await producer.connect()
      try {
        const txn = await producer.transaction()
        const results = []
        try {
          for (const s of step.sends || [])
            results.push(...(await txn.send({ topic: s.topic, acks: -1, timeout: 10000, messages: s.messages.map(toMessage) })))
          if (step.offsets)
            await txn.sendOffsets({ consumerGroupId: step.offsets.groupId, topics: step.offsets.topics })
        } catch (e) {
          await txn.abort()
          throw e
        }
        if (step.abort) await txn.abort()
        else await txn.commit()
        return results
      } finally {
        await producer.disconnect()
      }
    }
    case 'brokerCreateTopics': {
      // CreateTopics straight to the controller, so per-topic error types
      // survive (admin.createTopics flattens them into a message).
      const cluster = createCluster(kafka)
      await cluster.connect()
      try {
        await cluster.refreshMetadata()
        const broker = await cluster.findControllerBroker()
        return await broker.createTopics({ topics: step.topics, validateOnly: false, timeout: 10000 })
      } finally {
        await cluster.disconnect()
      }
    }
    default:
      break
  }
  const admin = kafka.admin()
  await admin.connect()
  try {
    switch (step.op) {
      case 'createTopics':
        return await admin.createTopics({
          topics: step.topics,
          waitForLeaders: step.waitForLeaders !== false,
          timeout: 10000,
        })
      case 'listTopics':
        return await admin.listTopics()
      case 'deleteTopics':
        await admin.deleteTopics({ topics: step.topics, timeout: 10000 })
        return true
      case 'fetchTopicMetadata':
        return await admin.fetchTopicMetadata({ topics: step.topics })
      case 'fetchTopicOffsets':
        return await admin.fetchTopicOffsets(step.topic)
      case 'fetchTopicOffsetsByTimestamp':
        return await admin.fetchTopicOffsetsByTimestamp(step.topic, step.timestamp)
      case 'describeCluster':
        return await admin.describeCluster()
      default:
        throw new Error(`unknown op ${step.op}`)
    }
  } finally {
    await admin.disconnect()
  }
}

function describeError(e) {
  return {
    name: e.name,
    message: e.message,
    type: e.type,
    code: e.code,
    retriable: e.retriable,
    cause: e.cause ? describeError(e.cause) : undefined,
    errors: Array.isArray(e.errors) ? e.errors.map(describeError) : undefined,
    topicErrors: e.topicErrors,
  }
}

async function main() {
  const req = JSON.parse(await readStdin())
  const kafka = new Kafka({
    clientId: 'gregor-bb-kafkajs',
    brokers: req.brokers,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 4, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
  })
  const results = []
  for (const step of req.steps) {
    try {
      results.push({ ok: await runStep(kafka, step) })
    } catch (e) {
      results.push({ error: describeError(e) })
    }
  }
  // Pipes are asynchronous in node: exit only once the line is flushed.
  await new Promise(resolve => process.stdout.write('KJS_RESULT ' + JSON.stringify(results) + '\n', resolve))
}

const watchdog = setTimeout(() => {
  process.stderr.write('kjs.js: watchdog fired after 80 s\n')
  process.exit(3)
}, 80000)
watchdog.unref()

main().then(
  () => process.exit(0),
  e => {
    process.stderr.write(`kjs.js failed: ${e && e.stack}\n`)
    process.exit(2)
  }
)
