import { main } from './program.js';
import { endQuietlyOnClosedPipe } from './stdio.js';

// The entry point of bin/orca (bundled into dist/cli/orca.cjs by scripts/bundle-cli.ts, or run
// as dist/cli/main.js). A closed stdout (`orca events | head -1`) ends it quietly, exit 0.
// No top-level await: the bundle is CommonJS, which loads faster than ES modules.
endQuietlyOnClosedPipe(process.stdout, process.stderr, (code) => process.exit(code));
void main(process.argv).then((code) => {
  // stdout and stderr are synchronous for files and pipes on Linux, so nothing written is lost.
  process.exit(code);
});
