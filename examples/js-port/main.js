#!/usr/bin/env node
'use strict';
// The lstm-conformance subprocess protocol around rnn.js:
// one request document on stdin, one {"outputs": ...} or {"unsupported": ...} object on stdout.
//   pytest --pyargs conformance --impl "cmd:node examples/js-port/main.js"

const { forward, Unsupported } = require('./rnn');

const toFloat32 = (data) => (Array.isArray(data) ? data.map(toFloat32) : Math.fround(data));
const shapeOf = (data) => (Array.isArray(data) ? [data.length, ...shapeOf(data[0])] : []);
// JavaScript computes in float64; a float64 layer's outputs are sent as such, the others rounded to float32
const encode = (data, dtype) => ({ shape: shapeOf(data), dtype, data: dtype === 'float64' ? data : toFloat32(data) });

function respond(request) {
  const { meta, arrays } = request;
  if (request.json_format !== 1) throw new Error(`unknown json_format ${request.json_format}`);
  const data = (names) => Object.fromEntries(names.filter((n) => n in arrays).map((n) => [n, arrays[n].data]));
  try {
    const result = forward({
      layer: meta.layer, config: meta.config, activations: meta.activations, gates: meta.gates,
      weights: data(meta.weights), inputs: data(meta.inputs),
    });
    const dtype = meta.config.dtype === 'float64' ? 'float64' : 'float32';
    const outputs = Object.fromEntries(meta.outputs.map((name) => [name, encode(result[name], dtype)]));
    outputs.trace = Object.fromEntries(Object.entries(result.trace).map(([gate, v]) => [gate, encode(v, dtype)]));
    return { outputs };
  } catch (err) {
    if (err instanceof Unsupported) return { unsupported: `js-port: ${err.message}` };
    throw err;
  }
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  process.stdout.write(JSON.stringify(respond(request)) + '\n');
});
