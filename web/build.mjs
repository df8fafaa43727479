// Bundles the page into web/dist/: main.js (with livekit-client), the AudioWorklet
// module (a separate file: addModule() loads it by URL), and index.html.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
// Overwrite in place (no wipe): the token server may be serving dist/ while this runs.
mkdirSync(dist, { recursive: true });
const common = { bundle: true, format: 'esm', target: ['chrome110'], sourcemap: true, logLevel: 'info' };
await build({ ...common, minify: true, entryPoints: [join(here, 'src/main.js')], outfile: join(dist, 'main.js') });
await build({ ...common, entryPoints: [join(here, 'src/detector-worklet.js')], outfile: join(dist, 'detector-worklet.js') });
copyFileSync(join(here, 'src/index.html'), join(dist, 'index.html'));
