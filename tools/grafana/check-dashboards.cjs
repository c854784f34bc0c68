#!/usr/bin/env node
// Grafana's own frontend code as a second validator of dashgen's built dashboards.
//
//   node check-dashboards.cjs [--grafana 12.3,13] [--frames FRAMES.json] DASHBOARD.json...
//
// Loads @grafana/data at each pinned version (package.json: 12.3.3, and 13.0.2 as `grafana-data-13`) in one
// process and checks, per dashboard and panel:
//   - every unit is in Grafana's unit registry (getValueFormatterIndex), or one of the custom forms its
//     getValueFormat parses (prefix:, suffix:, si:, count:, currency:, time:, bool:);
//   - every reducer id (stat calcs, legend calcs, table footer reducers, transformation reducers) is in
//     fieldReducers;
//   - every transformation id is in standardTransformersRegistry (initialised with @grafana/data's
//     standardTransformers, as Grafana's own tests do: packages/grafana-data/src/utils/tests/mockTransformationsRegistry.ts);
//   - with FRAMES (data frames shaped like each panel's queries, built by tests/test_frontend_check.py),
//     Grafana's transformDataFrame runs the panel's transformations, and every field override matcher
//     (Grafana's fieldMatchers) and every table sortBy name must find a field in the result;
//   - thresholds: the first step's value is null (the base), the others ascend strictly;
//   - every colour resolves in Grafana's theme (createTheme().visualization.getColorByName);
//   - option keys: panel options, field config `custom` and override property ids hold only keys Grafana's
//     types for that panel declare (the schemas generated from the same @grafana/schema version, src/dashgen/grafana/schemas/grafana-<v>/).
// Prints one line per problem ("<file>: grafana <v>: panel <id> '<title>': ...") and exits 1 if there is any,
// 0 otherwise, 2 on bad usage.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const VERSIONS = new Map([['12.3', '@grafana/data'], ['13', 'grafana-data-13']]);
const SCHEMAS = path.join(__dirname, '..', '..', 'src', 'dashgen', 'grafana', 'schemas');
const CUSTOM_UNIT = /^(prefix|suffix|si|count|currency|time|bool):/;
const PANEL_SCHEMAS = { timeseries: 'timeseries', stat: 'stat', table: 'table' };

// Problems go to stdout; whatever the libraries print (i18next's banner, warnings) goes to stderr.
for (const k of ['log', 'info', 'warn', 'debug']) {
  console[k] = (...a) => process.stderr.write(`${a.join(' ')}\n`);
}

// @grafana/data is browser code: give it a DOM (jsdom, as Grafana's jest setup does) before it loads.
function installDom() {
  const { JSDOM } = require('jsdom');
  const dom = new JSDOM('<!doctype html><html><head></head><body></body></html>', { url: 'http://localhost/' });
  const g = globalThis;
  g.window = dom.window;
  g.document = dom.window.document;
  for (const k of ['localStorage', 'sessionStorage', 'HTMLElement', 'Element', 'Node', 'getComputedStyle']) {
    g[k] = dom.window[k];
  }
  Object.defineProperty(g, 'navigator', { value: dom.window.navigator, configurable: true });
  g.matchMedia = () => ({ matches: false, addListener() {}, removeListener() {} });
}

function usage(message) {
  process.stderr.write(`check-dashboards: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { versions: ['12.3'], frames: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--grafana') {
      args.versions = (argv[++i] || '').split(',').filter(Boolean);
    } else if (a === '--frames') {
      args.frames = argv[++i];
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else {
      args.files.push(a);
    }
  }
  for (const v of args.versions) {
    if (!VERSIONS.has(v)) usage(`--grafana ${v}: expected one of ${[...VERSIONS.keys()].join(', ')}`);
  }
  if (!args.files.length) usage('no dashboard files given');
  return args;
}

function* allPanels(dashboard) {
  for (const p of dashboard.panels || []) {
    yield p;
    for (const c of p.panels || []) yield c;
  }
}

function* walk(value, at = []) {
  yield [at, value];
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* walk(value[i], [...at, i]);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) yield* walk(v, [...at, k]);
  }
}

const pathText = (at) => at.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');

function firstValue(observable) {
  return new Promise((resolve, reject) => {
    let sub = null;
    let done = false;
    sub = observable.subscribe({
      next: (v) => {
        if (!done) {
          done = true;
          resolve(v);
          if (sub) sub.unsubscribe();
        }
      },
      error: reject,
    });
  });
}

class Grafana {
  constructor(version) {
    this.version = version;
    this.data = require(VERSIONS.get(version));
    const d = this.data;
    const transformers = new Map(Object.values(d.standardTransformers).map((t) => [t.id, t]));
    d.standardTransformersRegistry.setInit(() =>
      Array.from(transformers.values(), (t) => ({
        id: t.id, aliasIds: t.aliasIds, name: t.name, description: t.description, transformation: t,
        editor: () => null, imageDark: '', imageLight: '',
      })));
    this.units = new Set(Object.keys(d.getValueFormatterIndex()));
    this.theme = d.createTheme();
    this.schemas = {};
  }

  unitOk(unit) {
    return this.units.has(unit) || CUSTOM_UNIT.test(unit);
  }

  reducerOk(id) {
    return Boolean(this.data.fieldReducers.getIfExists(id));
  }

  colorOk(name) {
    if (typeof name !== 'string' || !name) return false;
    if (/^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(name) || /^rgba?\(/.test(name)) return true;
    return this.theme.visualization.getColorByName(name) !== name;
  }

  schema(kind) {
    if (!(kind in this.schemas)) {
      const file = path.join(SCHEMAS, `grafana-${this.version}`, `${kind}.schema.json`);
      this.schemas[kind] = JSON.parse(fs.readFileSync(file, 'utf8'));
    }
    return this.schemas[kind];
  }
}

// Unknown keys under closed objects of Grafana's types (properties + additionalProperties false), following
// $ref; unions (anyOf) are left to `dashgen validate`, which checks the whole schema.
function* unknownKeys(root, schema, value, at) {
  while (schema && schema.$ref) schema = root.definitions[schema.$ref.replace('#/definitions/', '')];
  if (!schema || !value || typeof value !== 'object' || Array.isArray(value) || !schema.properties) return;
  for (const [k, v] of Object.entries(value)) {
    if (k in schema.properties) {
      yield* unknownKeys(root, schema.properties[k], v, [...at, k]);
    } else if (schema.additionalProperties === false) {
      yield `${pathText([...at, k])}: unknown key (not in Grafana's ${at[0]} type)`;
    }
  }
}

function overrideProps(panel) {
  const out = [];
  ((panel.fieldConfig || {}).overrides || []).forEach((o, i) => {
    (o.properties || []).forEach((p, j) => out.push({ o, i, p, j }));
  });
  return out;
}

function staticChecks(g, panel) {
  const problems = [];
  const fc = panel.fieldConfig || {};
  const defaults = fc.defaults || {};
  const opts = panel.options || {};
  // units
  if (defaults.unit !== undefined && !g.unitOk(defaults.unit)) {
    problems.push(`fieldConfig.defaults.unit ${JSON.stringify(defaults.unit)} is not in Grafana's unit registry`);
  }
  for (const { i, p, j } of overrideProps(panel)) {
    if (p.id === 'unit' && !g.unitOk(p.value)) {
      problems.push(`fieldConfig.overrides[${i}].properties[${j}] unit ${JSON.stringify(p.value)} is not in Grafana's unit registry`);
    }
  }
  // reducers
  const reducers = [];
  ((opts.reduceOptions || {}).calcs || []).forEach((r, i) => reducers.push([`options.reduceOptions.calcs[${i}]`, r]));
  ((opts.legend || {}).calcs || []).forEach((r, i) => reducers.push([`options.legend.calcs[${i}]`, r]));
  (((defaults.custom || {}).footer || {}).reducers || []).forEach((r, i) =>
    reducers.push([`fieldConfig.defaults.custom.footer.reducers[${i}]`, r]));
  for (const { i, p, j } of overrideProps(panel)) {
    if (p.id === 'custom.footer') {
      ((p.value || {}).reducers || []).forEach((r, k) =>
        reducers.push([`fieldConfig.overrides[${i}].properties[${j}].value.reducers[${k}]`, r]));
    }
  }
  (panel.transformations || []).forEach((t, i) => {
    for (const [at, v] of walk(t.options || {}, [`transformations[${i}].options`])) {
      const key = at[at.length - 1];
      if (key === 'reducers' || key === 'calcs' || key === 'aggregations') {
        (Array.isArray(v) ? v : []).forEach((r, k) => reducers.push([`${pathText(at)}[${k}]`, r]));
      } else if (key === 'reducer' && typeof v === 'string') {
        reducers.push([pathText(at), v]);
      }
    }
  });
  for (const [where, id] of reducers) {
    if (!g.reducerOk(id)) problems.push(`${where} reducer ${JSON.stringify(id)} is not in Grafana's fieldReducers`);
  }
  // transformation ids
  (panel.transformations || []).forEach((t, i) => {
    if (!g.data.standardTransformersRegistry.getIfExists(t.id)) {
      problems.push(`transformations[${i}] id ${JSON.stringify(t.id)} is not in Grafana's standardTransformersRegistry`);
    }
  });
  // thresholds
  const thresholdSets = [['fieldConfig.defaults.thresholds', defaults.thresholds]];
  for (const { i, p, j } of overrideProps(panel)) {
    if (p.id === 'thresholds') thresholdSets.push([`fieldConfig.overrides[${i}].properties[${j}].value`, p.value]);
  }
  for (const [where, th] of thresholdSets) {
    const steps = (th || {}).steps;
    if (!Array.isArray(steps) || !steps.length) {
      if (th !== undefined) problems.push(`${where}: no steps`);
      continue;
    }
    if (steps[0].value !== null) {
      problems.push(`${where}.steps[0].value is ${JSON.stringify(steps[0].value)}: the base step's value must be null`);
    }
    for (let k = 1; k < steps.length; k++) {
      const v = steps[k].value;
      const prev = steps[k - 1].value;
      if (typeof v !== 'number') {
        problems.push(`${where}.steps[${k}].value is ${JSON.stringify(v)}: expected a number`);
      } else if (k > 1 && typeof prev === 'number' && !(v > prev)) {
        problems.push(`${where}.steps[${k}].value ${v} is not above steps[${k - 1}].value ${prev}: thresholds must ascend`);
      }
    }
  }
  // colours: threshold steps, fixed colours, value mappings, override colour values
  for (const [at, v] of walk(panel)) {
    const key = at[at.length - 1];
    if ((key === 'color' || key === 'fixedColor') && typeof v === 'string' && !g.colorOk(v)) {
      problems.push(`${pathText(at)} colour ${JSON.stringify(v)} does not resolve in Grafana's theme`);
    }
  }
  // option keys, and the field config keys overrides set
  const kind = PANEL_SCHEMAS[panel.type];
  const custom = kind ? g.schema(kind).definitions.FieldConfig : null;
  if (kind) {
    const root = g.schema(kind);
    if (root.definitions.Options) problems.push(...unknownKeys(root, root.definitions.Options, opts, ['options']));
    if (custom && defaults.custom) {
      problems.push(...unknownKeys(root, custom, defaults.custom, ['fieldConfig', 'defaults', 'custom']));
    }
  }
  const standard = g.schema('dashboard').definitions.FieldConfig.properties;
  for (const { i, p, j } of overrideProps(panel)) {
    const id = String(p.id);
    let known = true;
    if (id.startsWith('custom.')) {
      let def = custom;
      while (def && def.$ref) def = g.schema(kind).definitions[def.$ref.replace('#/definitions/', '')];
      known = !kind || Boolean(def && def.properties && id.slice(7) in def.properties);
    } else {
      known = id in standard;
    }
    if (!known) {
      problems.push(`fieldConfig.overrides[${i}].properties[${j}].id ${JSON.stringify(id)}: unknown key (not in Grafana's field config types)`);
    }
  }
  return problems;
}

function toFrames(g, specs) {
  return specs.map((s) => g.data.createDataFrame({
    name: s.name, refId: s.refId,
    fields: s.fields.map((f) => ({ name: f.name, type: f.type, values: f.values, labels: f.labels, config: f.config || {} })),
  }));
}

async function dataChecks(g, panel, frameSpecs) {
  const problems = [];
  const d = g.data;
  let frames = toFrames(g, frameSpecs);
  const transformations = (panel.transformations || []).filter((t) => !t.disabled);
  if (transformations.length) {
    try {
      frames = await firstValue(d.transformDataFrame(transformations, frames, { interpolate: (v) => v }));
    } catch (err) {
      problems.push(`transformations: Grafana's transformDataFrame failed: ${err && err.message}`);
      return problems;
    }
  }
  const fields = [];
  for (const frame of frames) {
    for (const field of frame.fields) fields.push({ field, frame, name: d.getFieldDisplayName(field, frame, frames) });
  }
  const shown = fields.map((f) => f.name);
  const renamed = new Set(shown);
  ((panel.fieldConfig || {}).overrides || []).forEach((o, i) => {
    const m = o.matcher || {};
    const info = d.fieldMatchers.getIfExists(m.id);
    if (!info) {
      problems.push(`fieldConfig.overrides[${i}].matcher id ${JSON.stringify(m.id)} is not a Grafana field matcher`);
      return;
    }
    const match = info.get(m.options);
    const hits = fields.filter(({ field, frame }) => match(field, frame, frames));
    if (!hits.length) {
      problems.push(`fieldConfig.overrides[${i}] matcher ${m.id} ${JSON.stringify(m.options)} matches no field of the `
        + `panel's data after its transformations (fields: ${shown.join(', ') || 'none'})`);
    }
    for (const p of o.properties || []) {
      if (p.id === 'displayName' && hits.length) renamed.add(p.value);
    }
  });
  ((panel.options || {}).sortBy || []).forEach((s, i) => {
    if (!renamed.has(s.displayName)) {
      problems.push(`options.sortBy[${i}].displayName ${JSON.stringify(s.displayName)} names no column of the panel's `
        + `data (columns: ${[...renamed].join(', ') || 'none'})`);
    }
  });
  return problems;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  installDom();
  const frames = args.frames ? JSON.parse(fs.readFileSync(args.frames, 'utf8')) : {};
  const dashboards = args.files.map((f) => {
    try {
      return [f, JSON.parse(fs.readFileSync(f, 'utf8'))];
    } catch (err) {
      usage(`${f}: ${err.message}`);
      return null;
    }
  });
  let count = 0;
  for (const version of args.versions) {
    const g = new Grafana(version);
    for (const [file, dashboard] of dashboards) {
      const byPanel = frames[path.basename(file)] || {};
      for (const panel of allPanels(dashboard)) {
        if (panel.type === 'row') continue;
        const label = `${file}: grafana ${version}: panel ${panel.id} ${JSON.stringify(panel.title || '')}`;
        const problems = staticChecks(g, panel);
        if (byPanel[String(panel.id)]) problems.push(...await dataChecks(g, panel, byPanel[String(panel.id)]));
        for (const p of problems) {
          process.stdout.write(`${label}: ${p}\n`);
          count++;
        }
      }
    }
  }
  process.exit(count ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`check-dashboards: ${err && err.stack ? err.stack : err}\n`);
  process.exit(3);
});
