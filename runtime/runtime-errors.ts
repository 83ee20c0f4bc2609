/** OrcaErrors that DockerRuntime and FakeRuntime raise with the same code and wording. */
import { OrcaError } from '../core/errors.js';

/** ORCA_IMAGE_MISSING: names the image and says how to get it (images are never pulled). */
export function imageMissing(image: string, cause?: unknown): OrcaError {
  return new OrcaError(
    'ORCA_IMAGE_MISSING',
    `image ${image} is not present on this Docker host; Orca never pulls images: build it locally (for the examples: node dist/examples/build-images.js)`,
    cause === undefined ? {} : { cause },
  );
}
