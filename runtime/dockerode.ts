/**
 * dockerode, without the transports Orca does not use loaded until something calls them.
 *
 * As they load, whatever the Docker host and the build:
 * - docker-modem requires its ssh transport (lib/ssh.js), and with it ssh2, which instantiates a
 *   WebAssembly Poly1305 with a 16 MiB memory;
 * - dockerode requires its BuildKit session (lib/session.js), and with it @grpc/grpc-js and
 *   protobufjs (some 110 modules), used only by `buildImage` with `version: "2"`.
 * Together that is ~10 MB of an idle server's memory (V8 heap, wasm memory, module sources) for
 * code Orca never runs on a unix socket with the classic builder. Before dockerode loads, each of
 * the two files is put in Node's module cache as a stand-in that loads the real module on its
 * first call: a DOCKER_HOST=ssh://… or a BuildKit build still works, as before.
 */
import { createRequire } from 'node:module';
import Module from 'node:module';
import type DockerodeType from 'dockerode';

const require = createRequire(import.meta.url);
const dockerodeMain = require.resolve('dockerode');

/** docker-modem's lib/ssh.js, as docker-modem's own `require('./ssh')` resolves it. */
export const MODEM_SSH_PATH = createRequire(createRequire(dockerodeMain).resolve('docker-modem')).resolve('./ssh');
/** dockerode's lib/session.js, as dockerode's own `require('./session')` resolves it. */
export const DOCKERODE_SESSION_PATH = createRequire(dockerodeMain).resolve('./session');

/** Puts a stand-in for the CommonJS module at `path` (which exports one function) in the module cache. */
function deferFunctionModule(path: string, name: string): void {
  if (require.cache[path]) return; // already loaded (the real one or a stand-in)
  let real: ((...args: unknown[]) => unknown) | undefined;
  const standIn = new Module(path);
  standIn.filename = path;
  standIn.loaded = true;
  standIn.exports = {
    [name](this: unknown, ...args: unknown[]): unknown {
      if (real === undefined) {
        delete require.cache[path];
        real = require(path) as (...a: unknown[]) => unknown;
      }
      return real.apply(this, args);
    },
  }[name];
  require.cache[path] = standIn;
}

deferFunctionModule(MODEM_SSH_PATH, 'deferredModemSsh');
deferFunctionModule(DOCKERODE_SESSION_PATH, 'deferredWithSession');

/** The dockerode class (types: `import type Docker from 'dockerode'`). */
export const Dockerode = require('dockerode') as typeof DockerodeType;
