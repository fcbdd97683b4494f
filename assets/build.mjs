// Builds the dashboard into dist/ for embedding by embed.go.
//
//   node build.mjs              minified bundle, no source maps (what gets embedded)
//   node build.mjs --sourcemap  same, with linked source maps for debugging
//
// Output names are fixed because src/index.html refers to them:
//   dist/index.html, dist/app.js, dist/app.css, dist/favicon.svg,
//   dist/maplibre-gl-worker.mjs (MapLibre 6 loads its worker from this separate file).
// Code split off by dynamic import() lands next to them as [name]-[hash].js:
// hls.light-*.js (the footage player's hls.js), editor-*.js (the boundary
// editor with terra-draw, for grids.write users) and chunk-*.js (modules the
// two share with app.js).
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const dist = path.join(here, 'dist');
const sourcemap = process.argv.includes('--sourcemap');
const started = performance.now();

// Empty dist/ but keep .gitkeep, which the go:embed pattern needs in a fresh checkout.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== '.gitkeep') await rm(path.join(dist, name), { recursive: true, force: true });
}

await build({
  absWorkingDir: here,
  entryPoints: { app: path.join(src, 'main.js') },
  bundle: true,
  format: 'esm',
  // hls.js (the footage player's engine) and the boundary editor (terra-draw)
  // are imported dynamically: their own chunks, fetched on first use, not
  // with the map.
  splitting: true,
  chunkNames: '[name]-[hash]',
  minify: true,
  sourcemap: sourcemap ? 'linked' : false,
  legalComments: 'eof',
  outdir: dist,
  entryNames: '[name]',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

// MapLibre's worker is a separate ES module; app.js points setWorkerUrl at it.
const require = createRequire(import.meta.url);
const maplibreDir = path.dirname(require.resolve('maplibre-gl/package.json'));
await copyFile(path.join(maplibreDir, 'dist', 'maplibre-gl-worker.mjs'), path.join(dist, 'maplibre-gl-worker.mjs'));
await copyFile(path.join(src, 'index.html'), path.join(dist, 'index.html'));
await copyFile(path.join(src, 'favicon.svg'), path.join(dist, 'favicon.svg'));

let total = 0;
const lines = [];
for (const name of (await readdir(dist)).sort()) {
  const { size } = await stat(path.join(dist, name));
  total += size;
  if (name !== '.gitkeep') lines.push(`  ${name.padEnd(28)} ${(size / 1024).toFixed(1).padStart(8)} KiB`);
}
console.log(`built dist/ in ${Math.round(performance.now() - started)} ms, ${(total / 1024).toFixed(0)} KiB total\n${lines.join('\n')}`);
