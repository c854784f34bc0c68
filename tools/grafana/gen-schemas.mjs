#!/usr/bin/env node
// Regenerates dashgen's shipped JSON Schemas (src/dashgen/grafana/schemas/grafana-<version>/) from Grafana's own
// published TypeScript types: the npm package @grafana/schema at the versions pinned in package.json
// (package-lock.json holds the exact tarball and its integrity). Grafana generates those types from its CUE
// kinds (grafana/grafana `kinds/dashboard/dashboard_kind.cue`, `public/app/plugins/panel/*/panelcfg.cue`,
// the CloudWatch `dataquery.cue`); ts-json-schema-generator turns them into JSON Schema (draft-07), every
// object closed (additionalProperties: false), so a key Grafana's types do not have is an error.
//
// Run:  cd tools/grafana && npm ci && node gen-schemas.mjs [--out DIR]     (or: npm run schemas)
// Property defaults come from the package's own `default<Type>` constants (e.g. defaultDashboard).
// Deterministic: keys are sorted, no timestamps; running it twice changes nothing.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createGenerator } from 'ts-json-schema-generator';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
// `--out DIR` writes elsewhere (the tests regenerate into a temporary folder and compare bytes).
const outArg = process.argv.indexOf('--out');
const outRoot = outArg > 0 ? process.argv[outArg + 1] : join(repo, 'src', 'dashgen', 'grafana', 'schemas');

// One entry per Grafana version dashgen can target (`[grafana] version` in dashgen.toml).
// `dir` is the npm package folder under node_modules (an npm alias for the second version).
export const TARGETS = [
  { version: '12.3', dir: '@grafana/schema', data: '@grafana/data' },
  { version: '13', dir: 'grafana-schema-13', data: 'grafana-data-13' },
];

// Which exported types each schema file holds, and where Grafana's types declare them.
// The file names of the generated types changed between 12.3 and 13, so each is found by folder.
const KINDS = [
  { name: 'dashboard', folder: 'raw/dashboard/x', types: ['Dashboard', 'Panel', 'RowPanel', 'FieldConfigSource'] },
  { name: 'table', folder: 'raw/composable/table/panelcfg/x', types: ['Options', 'FieldConfig'] },
  { name: 'stat', folder: 'raw/composable/stat/panelcfg/x', types: ['Options'] },
  { name: 'timeseries', folder: 'raw/composable/timeseries/panelcfg/x', types: ['Options', 'FieldConfig'] },
  // expose 'none' inlines the types a query uses: its DataQuery is the veneer's, which extends (and shares its
  // name with) the generated common DataQuery, two definitions the generator cannot both name.
  { name: 'cloudwatch', folder: 'raw/composable/cloudwatch/dataquery/x', types: ['CloudWatchMetricsQuery'], expose: 'none' },
];

// Where the CUE-generated types lack a key Grafana's frontend model has (and writes into every saved
// dashboard): each patch names the @grafana/data declaration it is taken from, and is applied only after that
// declaration is found in the pinned version's package (so a patch cannot outlive Grafana's own model).
const PATCHES = [
  {
    // A query variable's `definition` (the query as text, shown in the variable list): QueryVariableModel.
    schema: 'dashboard', definition: 'VariableModel', property: 'definition', value: { type: 'string' },
    source: 'dist/types/types/templateVars.d.ts',
    declared: /interface QueryVariableModel [^{]*\{[^}]*\bdefinition: string;/,
  },
];

function sortKeys(value) {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

function typesFile(pkgRoot, folder) {
  const dir = join(pkgRoot, 'dist', 'types', folder);
  const files = readdirSync(dir).filter((f) => f.endsWith('.gen.d.ts'));
  if (files.length !== 1) {
    throw new Error(`${dir}: expected one *.gen.d.ts, found ${files.join(', ') || 'none'}`);
  }
  return join(dir, files[0]);
}

function generate(target, lock) {
  const pkgRoot = join(here, 'node_modules', target.dir);
  const pkg = JSON.parse(readFileSync(join(pkgRoot, 'package.json'), 'utf8'));
  const locked = lock.packages[`node_modules/${target.dir}`];
  // The panel types import the shared types as `@grafana/schema`: point that name at this version's copy.
  const work = mkdtempSync(join(tmpdir(), 'dashgen-schemas-'));
  const tsconfig = join(work, 'tsconfig.json');
  writeFileSync(tsconfig, JSON.stringify({
    compilerOptions: {
      strict: false, skipLibCheck: true, noEmit: true, moduleResolution: 'node', baseUrl: pkgRoot,
      paths: { '@grafana/schema': [join(pkgRoot, 'dist', 'types', 'index.d.ts')] },
    },
  }));
  const outDir = join(outRoot, `grafana-${target.version}`);
  mkdirSync(outDir, { recursive: true });
  const files = {};
  try {
    for (const kind of KINDS) {
      const path = typesFile(pkgRoot, kind.folder);
      const generator = createGenerator({
        path, tsconfig, expose: kind.expose ?? 'export', topRef: true, jsDoc: 'basic',
        additionalProperties: false, skipTypeCheck: true, sortProps: true,
      });
      // One type at a time (a '*' run trips over DataQuery, declared both in common and in the query kinds);
      // the definitions they share are the same objects, merged by name.
      const schema = { definitions: {} };
      for (const t of kind.types) {
        let one = generator.createSchema(t);
        const rootRef = one.$ref?.replace('#/definitions/', '');
        if (rootRef && rootRef !== t) {
          // expose 'none' names the root by a hash of its position: give it its type's name
          one = JSON.parse(JSON.stringify(one).replaceAll(`"#/definitions/${rootRef}"`, `"#/definitions/${t}"`));
          one.definitions[t] = one.definitions[rootRef];
          delete one.definitions[rootRef];
        }
        if (!one.definitions?.[t]) {
          throw new Error(`${path}: no exported type ${t}`);
        }
        for (const [name, def] of Object.entries(one.definitions)) {
          const seen = schema.definitions[name];
          if (seen && JSON.stringify(sortKeys(seen)) !== JSON.stringify(sortKeys(def))) {
            throw new Error(`${path}: two different definitions named ${name}`);
          }
          schema.definitions[name] = def;
        }
      }
      // The generator names an inline recursive type by a hash that changes from run to run: name it after
      // the type it belongs to, numbered in a stable order, so the output is byte-identical every time.
      const hashed = Object.keys(schema.definitions).filter((n) => /-\d+-\d+-/.test(n))
        .sort((a, b) => a.split('-').slice(2).join('-').localeCompare(b.split('-').slice(2).join('-')));
      if (hashed.length) {
        let text = JSON.stringify(schema);
        hashed.forEach((n, i) => {
          text = text.replaceAll(`"#/definitions/${n}"`, `"#/definitions/${kind.types[0]}.inline${i + 1}"`)
            .replaceAll(`"${n}":`, `"${kind.types[0]}.inline${i + 1}":`);
        });
        Object.assign(schema, JSON.parse(text));
      }
      // Defaults: Grafana's types carry none, its package exports them as `default<Type>` constants
      // (defaultDashboard.schemaVersion = 42, ...): each becomes the JSON Schema `default` of that property.
      const runtime = createRequire(import.meta.url)(target.dir);
      const defaulted = [];
      for (const [name, def] of Object.entries(schema.definitions)) {
        const values = runtime[`default${name}`];
        if (!values || typeof values !== 'object' || Array.isArray(values) || !def.properties) continue;
        for (const [key, value] of Object.entries(values)) {
          if (def.properties[key] && value !== undefined) {
            def.properties[key].default = value;
            defaulted.push(`${name}.${key}`);
          }
        }
      }
      const applied = [];
      for (const patch of PATCHES.filter((p) => p.schema === kind.name)) {
        const dataPkg = JSON.parse(readFileSync(join(here, 'node_modules', target.data, 'package.json'), 'utf8'));
        const text = readFileSync(join(here, 'node_modules', target.data, patch.source), 'utf8');
        if (!patch.declared.test(text)) {
          throw new Error(`${target.data}/${patch.source}: ${patch.definition}.${patch.property} is no longer declared`);
        }
        const def = schema.definitions[patch.definition];
        if (def.properties[patch.property]) {
          throw new Error(`${kind.name}: ${patch.definition}.${patch.property} is in the generated types now: drop the patch`);
        }
        def.properties[patch.property] = patch.value;
        applied.push(`${patch.definition}.${patch.property} from ${dataPkg.name}@${dataPkg.version} ${patch.source}`);
      }
      const body = sortKeys({
        $comment: `Generated by tools/grafana/gen-schemas.mjs from ${pkg.name}@${pkg.version} `
          + `${relative(pkgRoot, path)}; do not edit.`,
        $schema: 'http://json-schema.org/draft-07/schema#',
        definitions: schema.definitions,
      });
      const text = JSON.stringify(body, null, 2) + '\n';
      writeFileSync(join(outDir, `${kind.name}.schema.json`), text);
      files[`${kind.name}.schema.json`] = {
        sha256: createHash('sha256').update(text).digest('hex'),
        defaults: defaulted.length ? `${defaulted.length} from ${pkg.name}@${pkg.version} default<Type> constants` : null,
        patches: applied,
        source: relative(pkgRoot, path),
        types: kind.types,
      };
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const generatorPkg = JSON.parse(readFileSync(join(here, 'node_modules', 'ts-json-schema-generator', 'package.json'), 'utf8'));
  const manifest = sortKeys({
    files,
    generator: `ts-json-schema-generator@${generatorPkg.version}`,
    grafana: pkg.version,
    package: `${pkg.name}@${pkg.version}`,
    integrity: locked?.integrity ?? null,
    regenerate: 'cd tools/grafana && npm ci && node gen-schemas.mjs',
    target: target.version,
  });
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`grafana-${target.version}: ${pkg.name}@${pkg.version} -> ${outDir} (${Object.keys(files).length} schemas)`);
}

const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
for (const target of TARGETS) {
  generate(target, lock);
}
