'use strict'
// KafkaJS: every scenario. Started once per scenario, like the Python runners:
//   node runner.js SCENARIO --bootstrap HOST:PORT --prefix P   -> one line "COMPAT-RESULT {...}"
//   node runner.js --version                                   -> "COMPAT-VERSION <version>"
// KafkaJS ships gzip only; snappy, lz4 and zstd are plugged in from pure-JS/wasm packages
// (codecs.js), as its users do.

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs')
const { registerCodecs } = require('./codecs')

const MAX_BYTES = 2 * 1024 * 1024

class Skip extends Error {}

function parseArgs (argv) {
  const args = { scenario: null, bootstrap: '127.0.0.1:9092', prefix: `compat-${process.pid}`, version: false }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') args.bootstrap = argv[++i]
    else if (argv[i] === '--prefix') args.prefix = argv[++i]
    else if (argv[i] === '--version') args.version = true
    else args.scenario = argv[i]
  }
  return args
}

function check (condition, message) {
  if (!condition) throw new Error(message)
}

function same (got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) throw new Error(`${what}: expected ${w.slice(0, 300)}, got ${g.slice(0, 300)}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitUntil (predicate, seconds, what) {
  const deadline = Date.now() + seconds * 1000
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}`)
    await sleep(100)
  }
}

class Context {
  constructor (bootstrap, prefix) {
    this.prefix = prefix
    this.kafka = new Kafka({
      clientId: 'kafkacompat-compat',
      brokers: [bootstrap],
      logLevel: logLevel.NOTHING,
      retry: { retries: 5, initialRetryTime: 100 }
    })
    this.clients = []
  }

  topic (suffix = 't') { return `${this.prefix}-${suffix}` }
  group (suffix = 'g') { return `${this.prefix}-${suffix}` }

  async admin () {
    const admin = this.kafka.admin()
    await admin.connect()
    this.clients.push(admin)
    return admin
  }

  async producer (options = {}) {
    const producer = this.kafka.producer({ allowAutoTopicCreation: true, ...options })
    await producer.connect()
    this.clients.push(producer)
    return producer
  }

  consumer (options) {
    const consumer = this.kafka.consumer({
      maxBytesPerPartition: MAX_BYTES,
      maxBytes: 4 * MAX_BYTES,
      maxWaitTimeInMs: 200,
      ...options
    })
    this.clients.push(consumer)
    return consumer
  }

  async close () {
    await Promise.allSettled(this.clients.map(client => client.disconnect()))
  }
}

async function createTopic (ctx, topic, partitions = 1, configs = {}) {
  const admin = await ctx.admin()
  const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }))
  await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }],
    waitForLeaders: true
  })
}

const toText = buffer => (buffer === null || buffer === undefined ? null : buffer.toString('latin1'))

// Messages are [key, value, headers] with text (latin1) keys and values; null stays null.
async function produce (ctx, topic, messages, options = {}, send = {}) {
  const producer = await ctx.producer(options)
  const result = await producer.send({
    topic,
    acks: -1,
    ...send,
    messages: messages.map(([key, value, headers]) => ({
      key: key === null ? null : Buffer.from(key, 'latin1'),
      value: value === null ? null : Buffer.from(value, 'latin1'),
      headers: Object.fromEntries(headers)
    }))
  })
  return result
}

// Read `count` records of partition 0 from the beginning, with a group of its own.
async function read (ctx, topic, count, options = {}) {
  const consumer = ctx.consumer({ groupId: ctx.group(`read-${crypto.randomUUID()}`), ...options })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const out = []
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (partition !== 0) return
      const headers = Object.entries(message.headers || {}).map(([k, v]) => [k, toText(v)])
      out.push([Number(message.offset), toText(message.key), toText(message.value), headers])
    }
  })
  const deadline = Date.now() + 20000
  while (out.length < count && Date.now() < deadline) await sleep(50)
  await consumer.disconnect()
  return out
}

async function roundTrip (ctx, messages, options = {}, send = {}) {
  const topic = ctx.topic()
  await createTopic(ctx, topic)
  await produce(ctx, topic, messages, options, send)
  const got = await read(ctx, topic, messages.length)
  same(got.length, messages.length, 'records consumed')
  got.forEach((record, i) => same(record, [i, ...messages[i]], `record ${i}`))
}

function keyedMessages (count = 20) {
  return Array.from({ length: count }, (_, i) => [`key-${i % 4}`, `value-${i}`, [['trace', `t${i}`], ['n', '1']]])
}

function compressibleMessages (count = 200) {
  return Array.from({ length: count }, (_, i) => [`k${i}`, `record ${i} ` + 'abcdefgh'.repeat(50), [['c', 'x']]])
}

class Member {
  constructor (ctx, topic, group) {
    this.topic = topic
    this.assigned = []
    this.values = []
    this.consumer = ctx.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 })
    this.consumer.on(this.consumer.events.GROUP_JOIN, event => {
      this.assigned = [...(event.payload.memberAssignment[topic] || [])].sort()
    })
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true })
    await this.consumer.run({
      eachMessage: async ({ message }) => { this.values.push(toText(message.value)) }
    })
  }

  async leave () {
    await this.consumer.disconnect()
  }
}

const scenarios = {
  async metadata (ctx) {
    const topic = ctx.topic()
    await produce(ctx, topic, [['k', 'v', []]])
    const admin = await ctx.admin()
    const cluster = await admin.describeCluster()
    same(cluster.brokers.length, 1, 'brokers')
    check((await admin.listTopics()).includes(topic), 'topic listed')
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    same(topics[0].partitions.map(p => p.partitionId), [0], 'partitions')
    check(cluster.brokers.some(b => b.nodeId === topics[0].partitions[0].leader), 'the leader is a broker')
  },

  async admin_topics (ctx) {
    const topic = ctx.topic()
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true })
    check((await admin.listTopics()).includes(topic), 'created topic listed')
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    same(topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2], 'partitions')
    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    await waitUntil(async () => !(await admin.listTopics()).includes(topic), 10, 'the topic to go')
  },

  async keyed_headers (ctx) {
    await roundTrip(ctx, keyedMessages())
  },

  async codec_gzip (ctx) {
    await roundTrip(ctx, compressibleMessages(), {}, { compression: CompressionTypes.GZIP })
  },

  async codec_snappy (ctx) {
    await roundTrip(ctx, compressibleMessages(), {}, { compression: CompressionTypes.Snappy })
  },

  async codec_lz4 (ctx) {
    await roundTrip(ctx, compressibleMessages(), {}, { compression: CompressionTypes.LZ4 })
  },

  async codec_zstd (ctx) {
    await roundTrip(ctx, compressibleMessages(), {}, { compression: CompressionTypes.ZSTD })
  },

  async large_message (ctx) {
    const value = crypto.randomBytes(900 * 1024).toString('latin1')
    await roundTrip(ctx, [['big', value, [['size', '900KiB']]]])
  },

  async tombstone (ctx) {
    await roundTrip(ctx, [['user-1', 'alive', []], ['user-1', null, []], ['user-2', 'x', []]])
  },

  async group_rebalance (ctx) {
    const topic = ctx.topic()
    const group = ctx.group()
    await createTopic(ctx, topic, 2)
    const first = new Member(ctx, topic, group)
    await first.start()
    await waitUntil(() => same2(first.assigned, [0, 1]), 30, 'the first member to hold both partitions')
    const second = new Member(ctx, topic, group)
    await second.start()
    await waitUntil(
      () => first.assigned.length === 1 && second.assigned.length === 1 && first.assigned[0] !== second.assigned[0],
      30, 'the partitions to be split')
    const producer = await ctx.producer()
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 20 }, (_, i) => ({ value: `v${i}`, partition: i % 2 }))
    })
    await waitUntil(() => new Set([...first.values, ...second.values]).size >= 20, 30, 'both halves read')
    check(first.values.length && second.values.length, 'each member read its own partition')
    await second.leave()
    await waitUntil(() => same2(first.assigned, [0, 1]), 30, 'the first member to take both back')
    await producer.send({ topic, acks: -1, messages: [{ value: 'after', partition: 0 }, { value: 'after', partition: 1 }] })
    await waitUntil(() => first.values.filter(v => v === 'after').length === 2, 30, 'records after the hand-back')
    await first.leave()
  },

  async group_resume (ctx) {
    const topic = ctx.topic()
    const group = ctx.group()
    await createTopic(ctx, topic)
    await produce(ctx, topic, Array.from({ length: 10 }, (_, i) => [null, `a${i}`, []]))
    const consume = async count => {
      const consumer = ctx.consumer({ groupId: group })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      const out = []
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => { out.push([Number(message.offset), toText(message.value)]) }
      })
      await waitUntil(() => out.length >= count, 30, `${count} records`)
      const next = String(out[out.length - 1][0] + 1)
      await consumer.commitOffsets([{ topic, partition: 0, offset: next }])
      await consumer.disconnect()
      const admin = await ctx.admin()
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
      same(committed.partitions[0].offset, next, 'committed offset')
      return out
    }
    same((await consume(10)).map(r => r[0]), [...Array(10).keys()], "first member's offsets")
    await produce(ctx, topic, Array.from({ length: 5 }, (_, i) => [null, `b${i}`, []]))
    same(await consume(5), Array.from({ length: 5 }, (_, i) => [10 + i, `b${i}`]), 'resumed records')
  },

  async offsets_by_time (ctx) {
    const topic = ctx.topic()
    await createTopic(ctx, topic)
    const base = Date.now() - 60000
    const producer = await ctx.producer()
    for (let i = 0; i < 3; i++) {
      await producer.send({ topic, acks: -1, messages: [{ value: `t${i}`, timestamp: String(base + i * 10000) }] })
    }
    const admin = await ctx.admin()
    const at = async ts => (await admin.fetchTopicOffsetsByTimestamp(topic, ts))[0].offset
    same(await at(base + 5000), '1', 'offset for base+5s')
    same(await at(base), '0', 'offset for base')
    const offsets = await admin.fetchTopicOffsets(topic)
    same([offsets[0].low, offsets[0].high], ['0', '3'], 'low and high watermarks')
  },

  async idempotent_producer (ctx) {
    const messages = Array.from({ length: 200 }, (_, i) => [`k${i % 3}`, `v${i}`, []])
    await roundTrip(ctx, messages, { idempotent: true, maxInFlightRequests: 1 })
  },

  async transactional_producer (ctx) {
    const topic = ctx.topic()
    await createTopic(ctx, topic)
    const producer = await ctx.producer({ transactionalId: `${ctx.prefix}-txn`, idempotent: true, maxInFlightRequests: 1 })
    const committed = await producer.transaction()
    await committed.send({ topic, messages: Array.from({ length: 5 }, (_, i) => ({ value: `committed-${i}` })) })
    await committed.commit()
    const aborted = await producer.transaction()
    await aborted.send({ topic, messages: Array.from({ length: 5 }, (_, i) => ({ value: `aborted-${i}` })) })
    await aborted.abort()
    const got = await read(ctx, topic, 5, { readUncommitted: false })
    same(got.map(r => r[2]), Array.from({ length: 5 }, (_, i) => `committed-${i}`), 'read_committed')
  },

  async describe_configs (ctx) {
    const topic = ctx.topic()
    await createTopic(ctx, topic, 1, { 'retention.ms': '123456789' })
    const admin = await ctx.admin()
    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
      includeSynonyms: false
    })
    const entry = described.resources[0].configEntries.find(e => e.configName === 'retention.ms')
    same(entry && entry.configValue, '123456789', 'retention.ms')
  }
}

function same2 (a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  if (args.version) {
    console.log('COMPAT-VERSION ' + require('kafkajs/package.json').version)
    return
  }
  const began = Date.now()
  const impl = scenarios[args.scenario]
  let result
  if (!impl) {
    result = { status: 'skip', error: 'not expressible with this client' }
  } else {
    const ctx = new Context(args.bootstrap, args.prefix)
    try {
      await registerCodecs()
      await impl(ctx)
      result = { status: 'pass', error: null }
    } catch (err) {
      if (err instanceof Skip) {
        result = { status: 'skip', error: err.message }
      } else {
        console.error(err)
        result = { status: 'fail', error: `${err.name}: ${err.message}`.slice(0, 1000) }
      }
    } finally {
      await ctx.close()
    }
  }
  result.seconds = Math.round((Date.now() - began) / 10) / 100
  process.stdout.write('COMPAT-RESULT ' + JSON.stringify(result) + '\n', () => process.exit(0))
}

main()
