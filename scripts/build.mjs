// Builds the dual package: ES modules in dist/ (the library, the CLI and the
// .d.ts for `import`), CommonJS in dist/cjs/ (every entry point of the exports
// map and what it imports, with the .d.ts for `require`), and the Lua scripts
// next to both. The exports map in package.json is the single list of entry
// points: a subpath added there is built for both formats without touching this file.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const STAGE = '.tmp/cjs-build';
const CJS_OUT = 'dist/cjs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

tsc('tsconfig.build.json');
copyLua('dist');

// CommonJS: tsc decides a file's module format from the nearest package.json,
// so compile a staged copy of src/ that sits under {"type":"commonjs"}. The one
// ESM-only expression the sources use, import.meta.url, becomes its CommonJS twin.
rmSync(STAGE, { recursive: true, force: true });
rmSync(CJS_OUT, { recursive: true, force: true });
stage('src', join(STAGE, 'src'));
writeFileSync(join(STAGE, 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(
  join(STAGE, 'tsconfig.json'),
  `${JSON.stringify(
    {
      extends: relative(STAGE, 'tsconfig.json'),
      compilerOptions: {
        rootDir: 'src',
        outDir: relative(STAGE, CJS_OUT),
        noEmit: false,
        sourceMap: false,
        // ESM syntax in a CommonJS file is what this build is for.
        verbatimModuleSyntax: false,
      },
      files: entryPoints().map((src) => join('src', src)),
      include: [],
    },
    null,
    2,
  )}\n`,
);
tsc(join(STAGE, 'tsconfig.json'));
writeFileSync(join(CJS_OUT, 'package.json'), '{ "type": "commonjs" }\n');
copyLua(CJS_OUT);

/** The source file (relative to src/) of every subpath in the exports map. */
function entryPoints() {
  const sources = [];
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    const esm = target.import?.default;
    const cjs = target.require?.default;
    if (typeof esm !== 'string' || typeof cjs !== 'string') {
      fail(`exports["${subpath}"] needs both an import and a require condition`);
    }
    const file = esm.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts');
    if (cjs !== `./${CJS_OUT}/${file.replace(/\.ts$/, '.js')}`) {
      fail(
        `exports["${subpath}"].require.default should be ./${CJS_OUT}/${file.replace(/\.ts$/, '.js')}`,
      );
    }
    sources.push(file);
  }
  return sources;
}

function stage(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) {
      stage(source, target);
    } else if (entry.name.endsWith('.ts')) {
      const text = readFileSync(source, 'utf8').replaceAll(
        'import.meta.url',
        "require('node:url').pathToFileURL(__filename).href",
      );
      writeFileSync(target, text);
    }
  }
}

function copyLua(outDir) {
  const copy = (from, to) => {
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      if (entry.isDirectory()) copy(join(from, entry.name), join(to, entry.name));
      else if (entry.name.endsWith('.lua')) {
        mkdirSync(to, { recursive: true });
        cpSync(join(from, entry.name), join(to, entry.name));
      }
    }
  };
  copy('src', outDir);
}

function tsc(project) {
  const bin = join(dirname(new URL(import.meta.url).pathname), '..', 'node_modules', '.bin', 'tsc');
  const result = spawnSync(bin, ['-p', project], { stdio: 'inherit' });
  if (result.status !== 0) fail(`tsc -p ${project} failed`);
}

function fail(message) {
  process.stderr.write(`build: ${message}\n`);
  process.exit(1);
}
