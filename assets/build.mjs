// Builds the dashboard and the field app into dist/ for embedding by embed.go.
//
//   node build.mjs              minified bundles, no source maps (what gets embedded)
//   node build.mjs --sourcemap  same, with linked source maps for debugging
//
// What lands in dist/:
//   index.html                     src/index.html, its app.js / app.css references
//                                  rewritten to the hashed files below
//   app-HASH.js, app-HASH.css      the dashboard (entry src/main.js and the CSS it imports)
//   field-HASH.js, field-HASH.css  the field app (entry src/field/main.js), when src/field/ exists
//   editor-HASH.js, hls.light-HASH.js, chunk-HASH.js
//                                  code split off by dynamic import() (the boundary editor with
//                                  terra-draw, the footage player's hls.js) and modules two
//                                  outputs share
//   maplibre-gl-worker-HASH.mjs    MapLibre 6's worker, a separate ES module. Sources name it
//                                  'maplibre-gl-worker.mjs' (or '../maplibre-gl-worker.mjs', any
//                                  relative prefix) in a string literal, e.g.
//                                  setWorkerUrl(new URL('maplibre-gl-worker.mjs', import.meta.url).href),
//                                  and the build puts the hashed name in its place, as it does for
//                                  the pages' app.js. Every bundle and chunk sits at the top of
//                                  dist/, beside it.
//   favicon.svg                    as is
//   field/index.html               src/field/index.html, field.js / field.css rewritten to
//                                  ../field-HASH.js / ../field-HASH.css
//   field/sw.js                    the field app's service worker, bundled, not hashed; the literal
//                                  self.__SHELL__ in it becomes {"version": "...", "files": [...]}:
//                                  the app shell's URLs relative to field/
//   field/manifest.webmanifest     as is
//   field/icon-192.png, icon-512.png, icon-maskable-512.png
//                                  drawn here (the favicon's mark), no binary in the repository
//   X.br, X.gz                     beside every text file of 1 KiB or more (brotli 11, gzip 9);
//                                  the server picks one by Accept-Encoding
//   assets.json                    per file: raw, gzip and brotli bytes, whether its name is
//                                  content-hashed; the hashed names of the entries; first-load
//                                  totals of the dashboard and the field app; the field shell
//
// HASH is eight characters of A-Z and 2-7 (esbuild's [hash]); a name with "-HASH." before its
// extension is content-addressed and the server lets browsers keep it for a year
// (assets.Hashed in embed.go is the same rule). Everything else is served no-cache.
//
// The build writes a staging folder and swaps it for dist/ at the end, so a build that fails
// (or runs beside another) never leaves a half-written dist/.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const fieldSrc = path.join(src, 'field');
const dist = path.join(here, 'dist');
const out = path.join(here, `.dist-build-${process.pid}`);
const sourcemap = process.argv.includes('--sourcemap');
const started = performance.now();

// Text files at least this big get .br and .gz siblings.
const compressMin = 1024;
const textExt = new Set(['.js', '.mjs', '.css', '.html', '.svg', '.json', '.webmanifest']);
// The same rule as assets.Hashed: "-" and eight hash characters before the extension.
const hashedName = /-[A-Z2-7]{8}\.[a-z0-9]+$/;

const posix = (p) => p.split(path.sep).join('/');
const rel = (p) => posix(path.relative(out, path.resolve(here, p)));
class BuildError extends Error {}
const fail = (msg) => { throw new BuildError(msg); };
const hashed = new Set(); // dist paths whose names are content-hashed
const outputs = {}; // dist path → esbuild's metafile output, for the JS bundles

// hash8 is esbuild's [hash] format: 8 characters of base32 (A-Z, 2-7).
function hash8(data) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const digest = createHash('sha256').update(data).digest();
  let bits = 0, value = 0, s = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && s.length < 8) {
      s += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (s.length === 8) break;
  }
  return s;
}

async function main() {
  await rm(out, { recursive: true, force: true });
  await mkdir(path.join(out, 'field'), { recursive: true });
  // .gitkeep keeps the go:embed pattern matching in a fresh checkout.
  await writeFile(path.join(out, '.gitkeep'), '');
  const entries = {}; // logical name → dist path

  // ---- MapLibre's worker: copied under a hashed name ----
  const require = createRequire(import.meta.url);
  const maplibreDir = path.dirname(require.resolve('maplibre-gl/package.json'));
  // Its source map is not shipped, so the comment pointing at it goes.
  const worker = (await readFile(path.join(maplibreDir, 'dist', 'maplibre-gl-worker.mjs'), 'utf8'))
    .replace(/\n\/\/# sourceMappingURL=\S*\s*$/, '\n');
  const workerName = `maplibre-gl-worker-${hash8(worker)}.mjs`;
  await writeFile(path.join(out, workerName), worker);
  hashed.add(workerName);
  entries['maplibre-gl-worker.mjs'] = workerName;

  // ---- the bundles: dashboard and field app in one build, sharing chunks ----
  const field = existsSync(path.join(fieldSrc, 'main.js'));
  const entryPoints = { app: path.join(src, 'main.js') };
  if (field) entryPoints.field = path.join(fieldSrc, 'main.js');
  const common = {
    absWorkingDir: here,
    bundle: true,
    minify: true,
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'eof',
    outdir: out,
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    logLevel: 'warning',
    metafile: true,
  };
  const js = await build({
    ...common,
    entryPoints,
    format: 'esm',
    // hls.js (the footage player's engine) and the boundary editor (terra-draw)
    // are imported dynamically: their own chunks, fetched on first use.
    splitting: true,
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [renameInSources({ 'maplibre-gl-worker.mjs': workerName })],
  });
  for (const [p, o] of Object.entries(js.metafile.outputs)) {
    outputs[rel(p)] = o;
    if (!p.endsWith('.map')) hashed.add(rel(p));
  }
  const entryOutput = (entry) => {
    const input = posix(path.relative(here, entryPoints[entry]));
    const found = Object.entries(outputs).find(([p, o]) => o.entryPoint === input && p.endsWith('.js'));
    return found ? found[0] : fail(`esbuild wrote no output for ${input}`);
  };
  // reachable lists the JS files a bundle loads: itself and the chunks it
  // imports, statically only or also dynamically.
  const reachable = (start, dynamic) => {
    const seen = new Set([start]);
    const todo = [start];
    while (todo.length) {
      for (const imp of outputs[todo.pop()]?.imports ?? []) {
        if (imp.external || !(imp.kind === 'import-statement' || (dynamic && imp.kind === 'dynamic-import'))) continue;
        const p = rel(imp.path);
        if (!seen.has(p)) { seen.add(p); todo.push(p); }
      }
    }
    return [...seen];
  };
  const mentionsWorker = async (files) => {
    for (const f of files) if ((await readFile(path.join(out, f), 'utf8')).includes(workerName)) return true;
    return false;
  };

  const appJs = entryOutput('app');
  const appCss = outputs[appJs].cssBundle ? rel(outputs[appJs].cssBundle) : fail('src/main.js imports no CSS: app.css would be missing');
  entries['app.js'] = appJs;
  entries['app.css'] = appCss;
  if (!(await mentionsWorker(reachable(appJs, false)))) {
    fail(`the dashboard does not name ${workerName}: point setWorkerUrl at new URL('maplibre-gl-worker.mjs', import.meta.url)`);
  }

  // ---- the dashboard's page ----
  await copy(path.join(src, 'favicon.svg'), 'favicon.svg');
  const dashboard = await page(path.join(src, 'index.html'), 'index.html', { 'app.js': appJs, 'app.css': appCss });

  // ---- the field app ----
  let fieldLoad = null;
  let fieldShell = null;
  if (field) {
    const fieldJs = entryOutput('field');
    entries['field.js'] = fieldJs;
    const refs = { 'field.js': fieldJs };
    if (outputs[fieldJs].cssBundle) refs['field.css'] = rel(outputs[fieldJs].cssBundle);
    const inputs = new Set(reachable(fieldJs, true).flatMap((f) => Object.keys(outputs[f].inputs)));
    for (const banned of ['terra-draw', 'hls.js', 'src/editor', 'src/footage', 'src/admin']) {
      const hit = [...inputs].find((i) => i.includes(banned));
      if (hit) fail(`the field app pulls in ${hit}: it must not load the editor, hls.js, the footage tools or admin code`);
    }
    if ([...inputs].some((i) => i.includes('node_modules/maplibre-gl/')) && !(await mentionsWorker(reachable(fieldJs, true)))) {
      console.warn(`warning: the field app bundles MapLibre but never names ${workerName}: set its worker URL to '../maplibre-gl-worker.mjs' (relative to the page)`);
    }

    for (const [name, size, maskable] of [['icon-192.png', 192, false], ['icon-512.png', 512, false], ['icon-maskable-512.png', 512, true]]) {
      await writeFile(path.join(out, 'field', name), drawIcon(size, maskable));
    }
    // Pictures and the manifest are copied as they are.
    for (const name of await readdir(fieldSrc)) {
      if (/\.(svg|png|webp|ico|webmanifest)$/.test(name)) await copy(path.join(fieldSrc, name), `field/${name}`);
    }
    const manifestRefs = [];
    if (existsSync(path.join(out, 'field/manifest.webmanifest'))) {
      let manifest;
      try {
        manifest = JSON.parse(await readFile(path.join(out, 'field/manifest.webmanifest'), 'utf8'));
      } catch (err) {
        fail(`src/field/manifest.webmanifest is not JSON: ${err.message}`);
      }
      for (const icon of manifest.icons ?? []) manifestRefs.push(local('field', icon.src, 'manifest.webmanifest'));
    }

    let fieldPage = null;
    if (existsSync(path.join(fieldSrc, 'index.html'))) {
      fieldPage = await page(path.join(fieldSrc, 'index.html'), 'field/index.html', refs);
      entries['field.css'] = refs['field.css'];
    } else {
      console.warn('warning: src/field/main.js has no src/field/index.html beside it');
    }

    // The shell the service worker keeps: the page, everything it loads, the
    // chunks the app may import later, MapLibre's worker, the manifest and icons.
    const shell = [];
    for (const f of [
      'field/index.html',
      ...(fieldPage?.refs ?? []),
      ...reachable(fieldJs, true),
      ...(refs['field.css'] ? [refs['field.css']] : []),
      workerName,
      ...(existsSync(path.join(out, 'field/manifest.webmanifest')) ? ['field/manifest.webmanifest'] : []),
      ...manifestRefs,
      'field/icon-192.png', 'field/icon-512.png', 'field/icon-maskable-512.png',
    ]) {
      if (!existsSync(path.join(out, f))) fail(`the field app's shell names ${f}, which the build did not write`);
      if (!shell.includes(f)) shell.push(f);
    }
    const version = createHash('sha256');
    for (const f of shell) version.update(f).update('\0').update(await readFile(path.join(out, f))).update('\0');
    const shellJSON = {
      version: version.digest('hex').slice(0, 16),
      files: ['./', ...shell.map((f) => posix(path.posix.relative('field', f)))],
    };
    fieldShell = shellJSON;
    // Its first screen is the task list: MapLibre and its worker come with the map tab.
    fieldLoad = [...new Set(['field/index.html', ...(fieldPage?.refs ?? []), ...reachable(fieldJs, false)])];

    if (existsSync(path.join(fieldSrc, 'sw.js'))) {
      const swSource = await readFile(path.join(fieldSrc, 'sw.js'), 'utf8');
      if (!swSource.includes('self.__SHELL__')) console.warn('warning: src/field/sw.js does not read self.__SHELL__');
      await build({
        ...common,
        metafile: false,
        entryPoints: [path.join(fieldSrc, 'sw.js')],
        entryNames: '[name]',
        outdir: path.join(out, 'field'),
        // A classic script: it registers with or without {type: 'module'}.
        format: 'iife',
        define: { 'self.__SHELL__': JSON.stringify(shellJSON), 'process.env.NODE_ENV': '"production"' },
      });
      if ((await readFile(path.join(out, 'field/sw.js'), 'utf8')).includes('__SHELL__')) {
        fail('field/sw.js still holds __SHELL__ after the build: write it as the expression self.__SHELL__');
      }
    } else {
      console.warn('warning: src/field/ has no sw.js: the field app works offline only once it has one');
    }
  }

  // ---- precompression, sizes ----
  const files = (await walk(out)).filter((f) => f !== '.gitkeep');
  const sizes = {};
  await Promise.all(files.map(async (f) => {
    const data = await readFile(path.join(out, f));
    const s = { raw: data.length, gzip: null, brotli: null, hashed: hashed.has(f) };
    if (hashedName.test(path.basename(f)) !== s.hashed) fail(`${f}: its name and the hashed-name rule disagree`);
    if (textExt.has(path.extname(f)) && data.length >= compressMin) {
      const [br, gz] = await Promise.all([
        brotli(data, {
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
            [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
            [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
          },
        }),
        gzip(data, { level: 9 }),
      ]);
      if (!zlib.brotliDecompressSync(br).equals(data) || !zlib.gunzipSync(gz).equals(data)) fail(`${f}: compression does not round-trip`);
      await writeFile(path.join(out, `${f}.br`), br);
      await writeFile(path.join(out, `${f}.gz`), gz);
      s.brotli = br.length;
      s.gzip = gz.length;
    }
    sizes[f] = s;
  }));

  const total = (list) => {
    const t = { files: list, raw: 0, gzip: 0, brotli: 0 };
    for (const f of list) {
      const s = sizes[f] ?? fail(`${f} is not in dist/`);
      t.raw += s.raw;
      t.gzip += s.gzip ?? s.raw;
      t.brotli += s.brotli ?? s.raw;
    }
    return t;
  };
  // First load: the page and what it fetches before it is usable.
  const loads = {
    dashboard: total([...new Set(['index.html', 'favicon.svg', ...dashboard.refs, ...reachable(appJs, false), appCss, workerName])]),
  };
  if (fieldLoad) loads.field = total(fieldLoad);
  const sorted = Object.fromEntries(Object.keys(sizes).sort().map((f) => [f, sizes[f]]));
  await writeFile(path.join(out, 'assets.json'), JSON.stringify({ entries, loads, shell: fieldShell, files: sorted }, null, 1) + '\n');

  await mkdir(dist, { recursive: true });
  const old = path.join(here, `.dist-old-${process.pid}`);
  await rename(dist, old);
  await rename(out, dist);
  await rm(old, { recursive: true, force: true });

  const kib = (n) => (n == null ? '-' : (n / 1024).toFixed(1)).padStart(9);
  const lines = Object.entries(sorted).map(([f, s]) => `  ${f.padEnd(36)} ${kib(s.raw)} ${kib(s.gzip)} ${kib(s.brotli)}`);
  for (const [name, t] of Object.entries(loads)) lines.push(`  ${(name + ' first load').padEnd(36)} ${kib(t.raw)} ${kib(t.gzip)} ${kib(t.brotli)}`);
  console.log(`built dist/ in ${Math.round(performance.now() - started)} ms (KiB: raw, gzip, brotli)\n${lines.join('\n')}`);
}

// renameInSources is an esbuild plugin for our own sources (src/, not
// node_modules): a string literal holding a key of names, after any "./" or
// "../" prefix, gets the key's value (the built file's name) in its place.
function renameInSources(names) {
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const literal = new RegExp(`(['"\`])((?:\\.\\.?/)*)(${Object.keys(names).map(escape).join('|')})\\1`, 'g');
  return {
    name: 'rename-in-sources',
    setup(b) {
      b.onLoad({ filter: /\.m?js$/ }, async (args) => {
        if (!args.path.startsWith(src + path.sep)) return undefined;
        const text = await readFile(args.path, 'utf8');
        const renamed = text.replace(literal, (_, q, prefix, name) => q + prefix + names[name] + q);
        return renamed === text ? undefined : { contents: renamed, loader: 'js' };
      });
    },
  };
}

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

async function copy(from, to) {
  await writeFile(path.join(out, to), await readFile(from));
}

// walk lists the files under dir, as paths relative to it with "/".
async function walk(dir, prefix = '') {
  const found = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) found.push(...await walk(path.join(dir, e.name), `${prefix}${e.name}/`));
    else found.push(prefix + e.name);
  }
  return found;
}

// local resolves ref, written in a file in dist folder dir, to a dist path;
// null for absolute URLs, fragments and data: URLs.
function local(dir, ref, where) {
  if (!ref || /^([a-z][a-z0-9+.-]*:|\/\/|#|\/)/i.test(ref)) return null;
  const clean = ref.replace(/[?#].*$/, '');
  if (clean === '') return null;
  const p = path.posix.normalize(path.posix.join(dir, clean));
  if (p.startsWith('../')) fail(`${where} refers to ${ref}, outside dist/`);
  return p;
}

// page copies an HTML file to dist path to, with its references to the
// logical names in refs (written relative to the source HTML) replaced by the
// built files, plus a modulepreload hint for each chunk a module script
// imports statically. A stylesheet it links that is neither in refs nor an
// entry's CSS but sits beside the HTML in src/ is bundled and hashed here.
// Every other local reference must exist in dist/. Returns the dist paths
// the page refers to.
async function page(from, to, refs) {
  const dir = path.posix.dirname(to) === '.' ? '' : path.posix.dirname(to);
  let html = await readFile(from, 'utf8');
  const attr = /\b(src|href)="([^"]*)"/g;
  // Stylesheets to bundle: field.css may come from field/style.css.
  for (const [, , ref] of html.matchAll(attr)) {
    if (!ref.endsWith('.css') || refs[ref] || local('', ref, from) === null) continue;
    let source = path.join(path.dirname(from), ref);
    if (!existsSync(source) && ref === 'field.css') source = path.join(path.dirname(from), 'style.css');
    if (!existsSync(source)) continue;
    const name = path.basename(ref, '.css');
    const css = await build({
      absWorkingDir: here, bundle: true, minify: true, sourcemap: sourcemap ? 'linked' : false, logLevel: 'warning',
      metafile: true, outdir: out, entryNames: '[name]-[hash]', assetNames: '[name]-[hash]', entryPoints: { [name]: source },
    });
    for (const p of Object.keys(css.metafile.outputs)) {
      if (p.endsWith('.css')) refs[ref] = rel(p);
      if (!p.endsWith('.map')) hashed.add(rel(p));
    }
  }
  const used = [];
  html = html.replace(attr, (whole, name, ref) => {
    const target = refs[ref] ?? local(dir, ref, from);
    if (target === null) return whole;
    if (!existsSync(path.join(out, target))) fail(`${from} refers to ${ref}, which the build does not write`);
    if (statSync(path.join(out, target)).isFile()) used.push(target);
    return `${name}="${path.posix.relative(dir, target)}"`;
  });
  // Chunks the module scripts import right away: fetched in parallel with them.
  html = html.replace(/^([ \t]*)(<script\b[^>]*\btype="module"[^>]*\bsrc="([^"]*)"[^>]*><\/script>)/gm, (whole, indent, tag, ref) => {
    const target = local(dir, ref, from);
    const chunks = (outputs[target]?.imports ?? []).filter((i) => i.kind === 'import-statement').map((i) => path.posix.relative(dir, rel(i.path)));
    return chunks.map((c) => `${indent}<link rel="modulepreload" href="${c}">\n`).join('') + whole;
  });
  await writeFile(path.join(out, to), html);
  return { refs: [...new Set(used)] };
}

// ---- icons: the favicon's mark, drawn into PNGs ----

// drawIcon draws the favicon (src/favicon.svg, a 32×32 design: a dark rounded
// square, a sky-blue square outline crossed in four, the lower right quarter
// amber) at size×size, 4×4 samples a pixel. A maskable icon fills the whole
// square and keeps the mark inside the central 80 % circle a launcher may cut.
function drawIcon(size, maskable) {
  const bg = [0x0b, 0x14, 0x24], sky = [0x38, 0xbd, 0xf8], amber = [0xfb, 0xbf, 0x24];
  const glyph = maskable ? 0.78 : 1; // the mark's outer corner: 11·√2·0.78 ≈ 12.1 < 12.8 (40 % of 32)
  const n = 4;
  const rgba = Buffer.alloc(size * size * 4);
  const inRounded = (x, y, r) => {
    const cx = Math.min(Math.max(x, r), 32 - r), cy = Math.min(Math.max(y, r), 32 - r);
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  };
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const x = ((px + (sx + 0.5) / n) / size) * 32, y = ((py + (sy + 0.5) / n) / size) * 32;
          if (!(maskable || inRounded(x, y, 7))) continue;
          // The mark in its own units, scaled about the centre.
          const u = 16 + (x - 16) / glyph, v = 16 + (y - 16) / glyph;
          let c = bg;
          const outline = u >= 5 && u <= 27 && v >= 5 && v <= 27 && !(u > 7 && u < 25 && v > 7 && v < 25);
          const cross = (Math.abs(u - 16) <= 0.6 && v >= 6 && v <= 26) || (Math.abs(v - 16) <= 0.6 && u >= 6 && u <= 26);
          if (outline) c = sky;
          else if (cross) c = mix(bg, sky, 0.7);
          if (u >= 16 && u <= 26 && v >= 16 && v <= 26) c = mix(c, amber, 0.85);
          r += c[0]; g += c[1]; b += c[2]; a += 1;
        }
      }
      const i = (py * size + px) * 4;
      if (a > 0) {
        rgba[i] = Math.round(r / a); rgba[i + 1] = Math.round(g / a); rgba[i + 2] = Math.round(b / a);
      }
      rgba[i + 3] = Math.round((a / (n * n)) * 255);
    }
  }
  return png(size, size, rgba);
}

function mix(under, over, alpha) {
  return under.map((c, i) => c * (1 - alpha) + over[i] * alpha);
}

// png encodes 8-bit RGBA pixels (straight alpha), one unfiltered scanline at a time.
function png(width, height, rgba) {
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // bit depth 8, colour type RGBA, deflate, no filter method, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

try {
  await main();
} catch (err) {
  await rm(out, { recursive: true, force: true });
  // esbuild has printed its own errors; ours say what to fix; others need their stack.
  console.error(`build failed: ${err instanceof BuildError || err.errors ? err.message : err.stack}`);
  process.exit(1);
}
