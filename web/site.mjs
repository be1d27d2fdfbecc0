// Names the browser's files by their content and compresses them ahead of time, so that
// lakepulse can let browsers keep them for a year (a new build has new names) and serve the
// Brotli or gzip copy beside each file with no work per request.
//
// node web/site.mjs STAGED SITE
//   STAGED holds wasm-bindgen's lakepulse.js and lakepulse_bg.wasm and lakepulse.css;
//   SITE/pkg/ gets lakepulse.HASH.js, lakepulse.HASH_bg.wasm, lakepulse.HASH.css and
//   lakepulse.HASH.echarts.js, each with .br and .gz, and SITE/bundle.txt the name
//   lakepulse.HASH the server renders into its pages.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [staged, site] = process.argv.slice(2);
if (!staged || !site) {
  console.error('usage: node web/site.mjs STAGED SITE');
  process.exit(2);
}

await build({
  entryPoints: [path.join(import.meta.dirname, 'echarts.mjs')],
  bundle: true,
  minify: true,
  format: 'iife',
  outfile: path.join(staged, 'echarts.js'),
  logLevel: 'warning',
});

// One hash over every file: the wasm and its JS glue change together, and one name to carry
// keeps the server's side to a single line.
const suffixes = { '.js': 'lakepulse.js', '_bg.wasm': 'lakepulse_bg.wasm', '.css': 'lakepulse.css', '.echarts.js': 'echarts.js' };
const hash = createHash('sha256');
const files = Object.entries(suffixes).map(([suffix, name]) => {
  const bytes = fs.readFileSync(path.join(staged, name));
  hash.update(bytes);
  return [suffix, bytes];
});
const bundle = `lakepulse.${hash.digest('hex').slice(0, 16)}`;

const pkg = path.join(site, 'pkg');
fs.rmSync(pkg, { recursive: true, force: true });
fs.mkdirSync(pkg, { recursive: true });
for (const [suffix, bytes] of files) {
  const file = path.join(pkg, bundle + suffix);
  fs.writeFileSync(file, bytes);
  fs.writeFileSync(`${file}.gz`, zlib.gzipSync(bytes, { level: 9 }));
  fs.writeFileSync(`${file}.br`, zlib.brotliCompressSync(bytes, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  }));
}
fs.writeFileSync(path.join(site, 'bundle.txt'), `${bundle}\n`);
