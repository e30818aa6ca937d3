// The code examples of the docs live in docs/examples/, where CI runs and
// type-checks them; each doc shows a file verbatim in the code block that
// follows its marker line:
//
//   <!-- example: examples/guide-acquire.mjs -->
//   ```js
//   ...the file's content, exactly...
//   ```
//
// `node scripts/doc-examples.mjs` checks that every JavaScript/TypeScript block
// of the docs has a marker and matches its file; `--write` copies each file
// into its block. test/integration/examples.test.ts runs the same check.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Docs whose blocks are not examples to run: the proofs and the measurements. */
const NOT_EXAMPLES = new Set(['docs/safety.md', 'docs/benchmarks.md']);

/** The docs whose examples are extracted: README.md and every page of docs/ but NOT_EXAMPLES. */
export const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`)
    .filter((f) => !NOT_EXAMPLES.has(f)),
];

const MARKER = /^<!-- example: (\S+) -->$/;
const CODE_LANGS = new Set(['js', 'javascript', 'mjs', 'ts', 'typescript']);

/**
 * The code blocks of `markdown`: each with its language, its content (with a
 * final newline), the file its marker names (relative to the repository
 * root), and the line numbers of its fences.
 * @param {string} markdown
 * @param {string} docPath the doc's path relative to the repository root
 */
export function codeBlocks(markdown, docPath) {
  const lines = markdown.split('\n');
  /** @type {{ lang: string, code: string, file: string | undefined, start: number, end: number }[]} */
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    const marker = i > 0 ? MARKER.exec(lines[i - 1]) : null;
    blocks.push({
      lang: open[1],
      code: `${lines.slice(i + 1, end).join('\n')}\n`,
      file: marker ? relative(ROOT, join(ROOT, dirname(docPath), marker[1])) : undefined,
      start: i,
      end,
    });
    i = end;
  }
  return blocks;
}

/** Each doc of DOCS with its text. */
function readDocs() {
  return DOCS.map((doc) => [doc, readFileSync(join(ROOT, doc), 'utf8')]);
}

/** True for a block in JavaScript or TypeScript, which must be an extracted example. */
export function isCode(block) {
  return CODE_LANGS.has(block.lang);
}

/** Problems of every doc: code blocks without a marker, and blocks that differ from their file. */
export function check() {
  const problems = [];
  for (const [doc, text] of readDocs()) {
    for (const block of codeBlocks(text, doc)) {
      const where = `${doc}:${block.start + 1}`;
      if (!block.file) {
        if (isCode(block)) {
          problems.push(
            `${where}: a ${block.lang} block without an example marker; move it into a file of docs/examples/, put <!-- example: <path from the doc> --> on the line above the block, and run npm run docs:examples`,
          );
        }
        continue;
      }
      let file;
      try {
        file = readFileSync(join(ROOT, block.file), 'utf8');
      } catch {
        problems.push(`${where}: ${block.file} does not exist`);
        continue;
      }
      if (file !== block.code) problems.push(`${where}: differs from ${block.file}`);
    }
  }
  return problems;
}

/** Copies every marked example file into its block. */
function write() {
  for (const [doc, text] of readDocs()) {
    const lines = text.split('\n');
    for (const block of codeBlocks(text, doc).reverse()) {
      if (!block.file) continue;
      const code = readFileSync(join(ROOT, block.file), 'utf8').replace(/\n$/, '').split('\n');
      lines.splice(block.start + 1, block.end - block.start - 1, ...code);
    }
    const updated = lines.join('\n');
    if (updated !== text) {
      writeFileSync(join(ROOT, doc), updated);
      console.log(`updated ${doc}`);
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write')) write();
  const problems = check();
  for (const p of problems) console.error(p);
  process.exit(problems.length === 0 ? 0 : 1);
}
