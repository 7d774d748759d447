#!/usr/bin/env node
// lstm-conformance's tfjs runner: TensorFlow.js layers (pure-JS CPU backend) driven over JSON lines.
//
// Started once per Python process by conformance/adapters/tfjs.py, as
//     node runner.js MODULES_DIR
// where MODULES_DIR holds node_modules/@tensorflow/tfjs (installed by `npm ci --prefix MODULES_DIR`).
// It reads one request per line on stdin and writes one response per line on stdout; stdout carries
// nothing else (console.log and friends go to stderr, where tfjs's own notices land too).
//
// Request:  {"id": N, "fixture": "lstm-basic", "kind": "single"|"bidirectional"|"stacked",
//            "layers": [{"cls": "lstm"|"gru"|"simpleRNN"|"convLstm2d", "args": {...tfjs args...},
//                        "weights": {"kernel": ARRAY, ...}, "initialState": [ARRAY, ...] | null}],
//            "mergeMode": "concat"|"sum"|"mul"|"ave"|null,            (bidirectional)
//            "x": ARRAY, "mask": ARRAY | null,
//            "calls": {"steps": [...], "reset_before": [...]} | null}
//   ARRAY is {"shape": [...], "dtype": "float32"|"bool", "b64": base64 of little-endian float32 / uint8}.
//   Bidirectional: layers[0] is the wrapped layer; its weights are keyed "forward/kernel", ...
// Response: {"id": N, "results": [[[ARRAY, ...], ...], ...]}  per call (one without calls), per layer
//                                                       (one unless stacked), the tensors the layer's
//                                                       apply() returned, in tfjs's order
//           {"id": N, "error": {"phase": "build"|"weights"|"run", "name", "message", "stack"}}
//           {"id": N, "hello": {...versions...}}         (request {"op": "hello"})
//
// Request {"id": N, "op": "layers-model", "fixture": ..., "model": PATH of a model.json,
//          "inputs": [[ARRAY, ...], ...] one list per call, in the model's input order,
//          "reset_before": [K, ...]}   (the tfjs-converter port: the converter's files, as a user loads them)
// Response: {"id": N, "results": [[ARRAY, ...], ...]}  per call, the model's outputs in its output order
//           {"id": N, "error": {"phase": "load"|"run", ...}}
//
// Between requests nothing is kept but the loaded modules: every layer is disposed after its
// request, and tf.disposeVariables() drops any variable a failed build left behind.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const {createRequire} = require('module');

const out = process.stdout;
for (const name of ['log', 'info', 'debug', 'warn']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const modulesDir = process.argv[2];
if (!modulesDir) {
  process.stderr.write('usage: node runner.js MODULES_DIR\n');
  process.exit(2);
}
const requireThere = createRequire(path.join(path.resolve(modulesDir), 'package.json'));
const tf = requireThere('@tensorflow/tfjs');

function decode(entry) {
  const bytes = Buffer.from(entry.b64, 'base64');
  if (entry.dtype === 'bool') {
    return tf.tensor(Uint8Array.from(bytes), entry.shape, 'bool');
  }
  const copy = new Uint8Array(bytes);  // aligned, owned copy of the float32 bytes
  return tf.tensor(new Float32Array(copy.buffer, 0, copy.length / 4), entry.shape, 'float32');
}

function encode(tensor) {
  const data = tensor.dataSync();
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  const b64 = Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');
  return {shape: tensor.shape, dtype: 'float32', b64};
}

class Phase extends Error {
  constructor(phase, cause) {
    super(cause && cause.message);
    this.phase = phase;
    this.cause = cause;
  }
}

function inPhase(phase, fn) {
  try {
    return fn();
  } catch (err) {
    throw err instanceof Phase ? err : new Phase(phase, err);
  }
}

function makeLayer(spec) {
  const factory = tf.layers[spec.cls];
  if (typeof factory !== 'function') {
    throw new Error(`tf.layers has no ${spec.cls}()`);
  }
  return factory(spec.args);
}

// The weight list for layer.setWeights, in the order of layer.weights, matched by variable name:
// the last part of its name (kernel, recurrent_kernel, bias), under forward/ or backward/ for
// a Bidirectional's halves (tfjs's Bidirectional.setWeights takes the forward half first).
function orderedWeights(layer, weights, halves) {
  const variables = layer.weights;
  const n = variables.length;
  const used = new Set();
  const list = variables.map((v, k) => {
    const base = v.originalName.split('/').pop();
    const key = halves ? `${k < n / 2 ? 'forward' : 'backward'}/${base}` : base;
    if (!(key in weights)) {
      throw new Error(`tfjs variable ${v.originalName} (shape [${v.shape}]) has no fixture weight ${key}; ` +
                      `the fixture has ${Object.keys(weights).join(', ')}`);
    }
    used.add(key);
    return decode(weights[key]);
  });
  const unused = Object.keys(weights).filter(k => !used.has(k));
  if (unused.length) {
    throw new Error(`fixture weights ${unused.join(', ')} match no tfjs variable ` +
                    `(${variables.map(v => v.originalName).join(', ')})`);
  }
  return list;
}

function build(request) {
  // Built on a symbolic input of the fixture's batch size and feature shape (time axis open),
  // which is how a tfjs layer creates its weights; a stateful layer learns its batch size here.
  const x = request.x;
  const batchShape = [x.shape[0], null, ...x.shape.slice(2)];
  const built = [];
  if (request.kind === 'bidirectional') {
    const spec = request.layers[0];
    const layer = inPhase('build', () => tf.tidy(() => {
      const wrapper = tf.layers.bidirectional({layer: makeLayer(spec), mergeMode: request.mergeMode});
      wrapper.apply(tf.input({batchShape}));
      return wrapper;
    }));
    built.push({layer, spec});
    inPhase('weights', () => tf.tidy(() => layer.setWeights(orderedWeights(layer, spec.weights, true))));
  } else {
    let shape = batchShape;
    for (const spec of request.layers) {
      const layer = inPhase('build', () => tf.tidy(() => {  // tidy: LSTM's unitForgetBias initializer leaks 4 temporaries
        const made = makeLayer(spec);
        const symbolic = made.apply(tf.input({batchShape: shape}));
        const first = Array.isArray(symbolic) ? symbolic[0] : symbolic;
        shape = [first.shape[0], null, ...first.shape.slice(2)];
        return made;
      }));
      built.push({layer, spec});
      inPhase('weights', () => tf.tidy(() => layer.setWeights(orderedWeights(layer, spec.weights, false))));
    }
  }
  return built;
}

function sliceTime(tensor, start, size) {
  const begin = tensor.shape.map(() => 0);
  const sizes = tensor.shape.slice();
  begin[1] = start;
  sizes[1] = size;
  return tf.slice(tensor, begin, sizes);
}

// One pass over the built layers: a list (one entry per layer; one for single and bidirectional)
// of what each layer's apply() returned, encoded, in tfjs's return order.
function forwardPass(request, built, x, mask) {
  const results = [];
  let input = x;
  for (const {layer, spec} of built) {  // stacked: each layer reads the previous sequence, the same mask reaches all
    const kwargs = {training: false};
    if (mask) kwargs.mask = mask;
    if (spec.initialState) kwargs.initialState = spec.initialState.map(decode);
    let result = layer.apply(input, kwargs);
    result = Array.isArray(result) ? result : [result];
    results.push(result.map(encode));
    input = result[0];
  }
  return results;
}

function execute(request, built) {
  return inPhase('run', () => tf.tidy(() => {
    const x = decode(request.x);
    const mask = request.mask ? decode(request.mask) : null;
    if (!request.calls) return [forwardPass(request, built, x, mask)];
    // Stateful: tfjs's stateful layers carry their own states from one apply() to the next;
    // resetStates() (zeros) before each call listed in reset_before. A new layer starts from zeros.
    const resets = new Set(request.calls.reset_before || []);
    const passes = [];
    let start = 0;
    request.calls.steps.forEach((steps, k) => {
      if (k > 0 && resets.has(k)) built.forEach(({layer}) => layer.resetStates());
      passes.push(forwardPass(request, built, sliceTime(x, start, steps), mask && sliceTime(mask, start, steps)));
      start += steps;
    });
    return passes;
  }));
}

// tf.loadLayersModel on a model.json and its weight files, read as @tensorflow/tfjs-node's file:// handler
// reads them (tfjs-node/src/io/file_system.ts at tfjs-v4.22.0, loadJSONModel and loadWeights): the shards of
// every group, in the manifest's order, concatenated. (tfjs-node itself is not installed: its install
// downloads libtensorflow from outside npm.)
function fileHandler(modelPath) {
  return {
    load: async () => {
      const modelJSON = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const buffers = [];
        const specs = [];
        for (const group of manifest) {
          for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), shard)));
          specs.push(...group.weights);
        }
        const joined = Buffer.concat(buffers);
        return [specs, joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength)];
      });
    },
  };
}

// The converter's model, loaded and called with predict() once per call; resetStates() before each call
// listed in reset_before (a stateful model carries its states from one predict() to the next).
async function layersModel(request) {
  let model;
  try {
    model = await tf.loadLayersModel(fileHandler(request.model));
  } catch (err) {
    throw new Phase('load', err);
  }
  try {
    const resets = new Set(request.reset_before || []);
    return inPhase('run', () => request.inputs.map((inputs, k) => tf.tidy(() => {
      if (k > 0 && resets.has(k)) model.resetStates();
      const xs = inputs.map(decode);
      const result = model.predict(xs.length === 1 ? xs[0] : xs);
      return (Array.isArray(result) ? result : [result]).map(encode);
    })));
  } finally {
    release([model, ...model.layers]);
  }
}

// Every layer disposed, with a stateful layer's kept states, and any variable left behind.
function release(layers) {
  for (const layer of layers) {
    for (const rnn of [layer, layer.forwardLayer, layer.backwardLayer]) {
      if (rnn && rnn.stateful && rnn.states_) {
        tf.dispose(rnn.states_);
        tf.dispose(rnn.keptStates || []);
        rnn.states_ = null;
      }
    }
    try { layer.dispose(); } catch (err) { /* already disposed */ }
  }
  tf.disposeVariables();
}

function describe(err) {
  const cause = err instanceof Phase ? err.cause : err;
  return {
    phase: err instanceof Phase ? err.phase : 'run',
    name: (cause && (cause.name || (cause.constructor && cause.constructor.name))) || 'Error',
    message: String(cause && cause.message !== undefined ? cause.message : cause),
    stack: String((cause && cause.stack) || '').split('\n').slice(0, 12).join('\n'),
  };
}

function handle(request) {
  if (request.op === 'hello') {
    return {hello: {tfjs: tf.version.tfjs, 'tfjs-layers': tf.version['tfjs-layers'], backend: tf.getBackend(),
                    node: process.version, pid: process.pid, tensors: tf.memory().numTensors}};
  }
  if (request.op === 'crash') {  // for the adapter's own tests: a node process that dies mid-request
    process.stderr.write('runner: crashing on request, as asked\n');
    process.exit(3);
  }
  if (request.op === 'hang') {  // for the adapter's own tests: a node process that never answers
    process.stderr.write('runner: hanging on request, as asked\n');
    for (;;) { /* spin */ }
  }
  if (request.op === 'layers-model') {
    return layersModel(request).then(results => ({results}), err => ({error: describe(err)}));
  }
  let built = [];
  try {
    built = build(request);
    return {results: execute(request, built)};
  } catch (err) {
    return {error: describe(err)};
  } finally {
    release(built.map(({layer}) => layer));
  }
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const lines = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
  for await (const line of lines) {
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (err) {
      const error = {phase: 'protocol', name: 'SyntaxError', message: err.message};
      out.write(JSON.stringify({id: null, error}) + '\n');
      continue;
    }
    const response = await handle(request);  // a promise for layers-model
    response.id = request.id;
    out.write(JSON.stringify(response) + '\n');
  }
}

main().catch(err => {
  process.stderr.write(`runner: ${err && err.stack || err}\n`);
  process.exit(1);
});
