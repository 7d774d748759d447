'use strict';
// Keras LSTM and GRU inference in plain JavaScript: the math a port author writes, nothing more.
//
// Weights use the Keras layout: kernel (features, G*units), recurrent_kernel (units, G*units),
// gate blocks along the last axis in the order LSTM i,f,c,o and GRU z,r,h.
// Numbers are JavaScript doubles; results are rounded to float32 at the end.

class Unsupported extends Error {}

const ACTIVATIONS = {
  tanh: () => Math.tanh,
  sigmoid: () => (x) => 1 / (1 + Math.exp(-x)),
  hard_sigmoid: ({ slope, offset }) => (x) => Math.min(1, Math.max(0, slope * x + offset)),
  relu: () => (x) => Math.max(0, x),
  linear: () => (x) => x,
};

// An activation from the fixture's structured definition, e.g. {name: "hard_sigmoid", slope: 0.2, offset: 0.5}.
function activation(definition) {
  const make = ACTIVATIONS[definition.name];
  if (!make) throw new Unsupported(`activation ${JSON.stringify(definition.name)} is not implemented`);
  const f = make(definition);
  return (v) => v.map(f);
}

// v @ W[:, block*units : (block+1)*units]
function project(v, W, block, units) {
  const out = new Array(units).fill(0);
  for (let k = 0; k < v.length; k++) {
    for (let j = 0; j < units; j++) out[j] += v[k] * W[k][block * units + j];
  }
  return out;
}

const add = (...vs) => vs[0].map((_, j) => vs.reduce((s, v) => s + v[j], 0));
const mul = (a, b) => a.map((x, j) => x * b[j]);
const zeros = (n) => new Array(n).fill(0);

// One LSTM step. Returns the trace values (gates, then new states) and the new [h, c].
function lstmCell(w, units, act, recAct) {
  const gate = (x, h, block) =>
    add(project(x, w.kernel, block, units), project(h, w.recurrent_kernel, block, units),
        w.bias.slice(block * units, (block + 1) * units));
  return (x, [h, c]) => {
    const i = recAct(gate(x, h, 0));
    const f = recAct(gate(x, h, 1));
    const cTilde = act(gate(x, h, 2));
    const o = recAct(gate(x, h, 3));
    const cNew = add(mul(f, c), mul(i, cTilde));
    const hNew = mul(o, act(cNew));
    return { values: { i, f, c_tilde: cTilde, o }, states: [hNew, cNew] };
  };
}

// One GRU step: z, r, candidate hh, then h = z*h_prev + (1-z)*hh.
// reset_after: bias (2, 3u) = [input; recurrent], and r multiplies (h U_h + b_rh).
// Otherwise:   bias (3u,), and r multiplies h before the matmul.
function gruCell(w, units, act, recAct, resetAfter) {
  const inputBias = resetAfter ? w.bias[0] : w.bias;
  const recurrentBias = resetAfter ? w.bias[1] : zeros(3 * units);
  const slice = (b, block) => b.slice(block * units, (block + 1) * units);
  const xPart = (x, block) => add(project(x, w.kernel, block, units), slice(inputBias, block));
  const hPart = (h, block) => add(project(h, w.recurrent_kernel, block, units), slice(recurrentBias, block));
  return (x, [h]) => {
    const z = recAct(add(xPart(x, 0), hPart(h, 0)));
    const r = recAct(add(xPart(x, 1), hPart(h, 1)));
    const hh = resetAfter
      ? act(add(xPart(x, 2), mul(r, hPart(h, 2))))
      : act(add(xPart(x, 2), project(mul(r, h), w.recurrent_kernel, 2, units)));
    const hNew = add(mul(z, h), mul(z.map((v) => 1 - v), hh));
    return { values: { z, r, hh }, states: [hNew] };
  };
}

// The Keras time loop for one sequence: go_backwards processes T-1..0 and returns the
// sequence in that processing order; a masked step holds the states and repeats the
// previous output (zeros before the first unmasked step, or always with zero_output_for_mask).
function runSequence(cell, xs, mask, initialStates, stateNames, config) {
  const steps = xs.length;
  const order = [...Array(steps).keys()];
  if (config.go_backwards) order.reverse();
  let states = initialStates;
  let previous = zeros(states[0].length);
  const outputs = [];
  const trace = {};
  for (const t of order) {
    const { values, states: next } = cell(xs[t], states);
    const keep = mask ? mask[t] : true;
    if (keep) states = next;
    stateNames.forEach((name, k) => { values[name] = states[k]; });
    previous = keep ? next[0] : (config.zero_output_for_mask ? zeros(previous.length) : previous);
    outputs.push(previous);
    for (const [name, v] of Object.entries(values)) (trace[name] = trace[name] || []).push(v);
  }
  return { output: config.return_sequences ? outputs : previous, states, trace };
}

const LAYOUTS = { LSTM: ['i', 'f', 'c', 'o'], GRU: ['z', 'r', 'h'] };

// Config keys that change nothing at inference; any other key we do not know is refused.
const INERT = new Set(['units', 'activation', 'recurrent_activation', 'use_bias', 'return_sequences',
  'return_state', 'go_backwards', 'zero_output_for_mask', 'reset_after', 'unit_forget_bias', 'dropout',
  'recurrent_dropout', 'unroll', 'name', 'trainable', 'dtype', 'seed', 'implementation', 'cell_wrapper']);

function checkSupported(layer, config, gates, units) {
  if (!LAYOUTS[layer]) throw new Unsupported(`layer ${layer} is not implemented (LSTM and GRU only)`);
  for (const [key, value] of Object.entries(config)) {
    const inert = INERT.has(key) || /_(initializer|regularizer|constraint)$/.test(key);
    if (!inert && value) throw new Unsupported(`config ${key}=${JSON.stringify(value)} is not implemented`);
  }
  // This engine hard-codes the Keras gate layout, as real ports do; refuse a fixture that says otherwise.
  const weightNames = config.use_bias === false ? ['kernel', 'recurrent_kernel'] : ['kernel', 'recurrent_kernel', 'bias'];
  for (const weight of weightNames) {
    LAYOUTS[layer].forEach((gate, k) => {
      const range = gates[weight] && gates[weight][gate];
      if (!range || range[0] !== k * units || range[1] !== (k + 1) * units) {
        throw new Unsupported(`gate layout of ${weight} is not Keras ${LAYOUTS[layer].join(',')}`);
      }
    });
  }
}

// Run one layer on a batch. `weights` and `inputs` hold nested arrays; returns nested arrays.
function forward({ layer, config, activations, gates, weights, inputs }) {
  const units = config.units;
  checkSupported(layer, config, gates, units);
  const act = activation(activations.activation);
  const recAct = activation(activations.recurrent_activation);
  const useBias = config.use_bias !== false;
  const resetAfter = layer === 'GRU' && config.reset_after !== false;
  const gateCount = LAYOUTS[layer].length;
  const bias = useBias ? weights.bias : (resetAfter ? [zeros(gateCount * units), zeros(gateCount * units)]
                                                    : zeros(gateCount * units));
  const w = { kernel: weights.kernel, recurrent_kernel: weights.recurrent_kernel, bias };
  const stateNames = layer === 'LSTM' ? ['h', 'c'] : ['h'];
  const cell = layer === 'LSTM' ? lstmCell(w, units, act, recAct) : gruCell(w, units, act, recAct, resetAfter);

  const result = { output: [], trace: {} };
  stateNames.forEach((name) => { result[`state_${name}`] = []; });
  inputs.x.forEach((xs, b) => {
    const initial = stateNames.map((name) =>
      (inputs[`initial_state_${name}`] ? inputs[`initial_state_${name}`][b] : zeros(units)));
    const seq = runSequence(cell, xs, inputs.mask && inputs.mask[b], initial, stateNames, config);
    result.output.push(seq.output);
    stateNames.forEach((name, k) => result[`state_${name}`].push(seq.states[k]));
    for (const [name, steps] of Object.entries(seq.trace)) (result.trace[name] = result.trace[name] || []).push(steps);
  });
  return result;
}

module.exports = { forward, Unsupported, ACTIVATIONS };
