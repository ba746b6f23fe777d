'use strict'
// Produce `count` values to a topic and read them back, with the TLS/SASL options given:
//   node kafkajs_round_trip.js '{"bootstrap": "...", "topic": "...", "count": 10, "ssl": {...}, "sasl": {...}}'
// Prints the values read, as one JSON line.
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const config = JSON.parse(process.argv[2])
  let ssl
  if (config.ssl) {
    ssl = { ca: [fs.readFileSync(config.ssl.ca, 'utf-8')] }
    if (config.ssl.cert) {
      ssl.cert = fs.readFileSync(config.ssl.cert, 'utf-8')
      ssl.key = fs.readFileSync(config.ssl.key, 'utf-8')
    }
  }
  const kafka = new Kafka({
    clientId: 'kafkajs-security',
    brokers: [config.bootstrap],
    ssl,
    sasl: config.sasl,
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 }
  })
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < config.count; i++) messages.push({ value: `kafkajs-${i}` })
  await producer.send({ topic: config.topic, messages, acks: -1 })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `${config.topic}-kafkajs` })
  await consumer.connect()
  await consumer.subscribe({ topic: config.topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} values read`)), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString())
        if (got.length === config.count) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  console.log(JSON.stringify(got))
}

main().catch((error) => { console.error(error); process.exit(1) })
