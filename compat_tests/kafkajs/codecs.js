'use strict'
// KafkaJS codec plug-ins for snappy (kafkajs-snappy), lz4 (the LZ4 frame format, lz4js) and
// zstd (@bokuweb/zstd-wasm): all without native builds.

const { CompressionTypes, CompressionCodecs } = require('kafkajs')

async function registerCodecs () {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')

  const lz4 = require('lz4js')
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    async compress (encoder) { return Buffer.from(lz4.compress(encoder.buffer)) },
    async decompress (buffer) { return Buffer.from(lz4.decompress(buffer)) }
  })

  const zstd = require('@bokuweb/zstd-wasm')
  await zstd.init()
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress (encoder) { return Buffer.from(zstd.compress(encoder.buffer, 3)) },
    async decompress (buffer) { return Buffer.from(zstd.decompress(buffer)) }
  })
}

module.exports = { registerCodecs }
