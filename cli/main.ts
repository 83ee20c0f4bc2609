import { main } from './program.js';
import { endQuietlyOnClosedPipe } from './stdio.js';

// The entry point of bin/orca. A closed stdout (`orca events | head -1`) ends it quietly, exit 0.
endQuietlyOnClosedPipe(process.stdout, process.stderr, (code) => process.exit(code));
const code = await main(process.argv);
// stdout and stderr are synchronous for files and pipes on Linux, so nothing written is lost.
process.exit(code);
