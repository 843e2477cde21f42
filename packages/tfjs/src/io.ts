import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from 'ringwire';

/**
 * A tf.io handler that saves to and loads from a directory: model.json + weights.bin, the layout
 * of tfjs-node's file:// handler. The pure-JS @tensorflow/tfjs has no file:// handler; use
 * `model.save(fileHandler(dir))` and `tf.loadLayersModel(fileHandler(dir))`, or
 * `registerFileRouter()` once to make 'file://' URLs work as with tfjs-node.
 */
export function fileHandler(pathOrUrl: string): tf.io.IOHandler {
  const dir = pathOrUrl.startsWith('file://') ? fileURLToPath(pathOrUrl) : pathOrUrl;
  const modelPath = join(dir, 'model.json');
  const weightsPath = join(dir, 'weights.bin');
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer)
        throw new InvalidArgumentError('fileHandler: binary model topologies are not supported');
      await mkdir(dir, { recursive: true });
      const weights =
        artifacts.weightData == null
          ? new ArrayBuffer(0)
          : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig != null) json.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata != null) json.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.signature != null) json.signature = artifacts.signature;
      if (artifacts.modelInitializer != null) json.modelInitializer = artifacts.modelInitializer;
      await writeFile(weightsPath, new Uint8Array(weights));
      await writeFile(modelPath, JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = JSON.parse(await readFile(modelPath, 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((group) => group.weights);
        const buffers = await Promise.all(
          manifest.flatMap((group) => group.paths.map((p) => readFile(join(dir, p)))),
        );
        const bytes = Buffer.concat(buffers);
        return [specs, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)];
      });
    },
  };
}

let registered = false;

/** Routes 'file://' URLs in model.save / tf.loadLayersModel to fileHandler, unless a handler (tfjs-node's) already does. */
export function registerFileRouter(): void {
  if (registered) return;
  const probe = 'file:///ringwire-probe';
  const hasSave = tf.io.getSaveHandlers(probe).length > 0;
  const hasLoad = tf.io.getLoadHandlers(probe).length > 0;
  const route = ((url: string | string[]) =>
    typeof url === 'string' && url.startsWith('file://') ? fileHandler(url) : null) as unknown as Parameters<
    typeof tf.io.registerSaveRouter
  >[0];
  if (!hasSave) tf.io.registerSaveRouter(route);
  if (!hasLoad) tf.io.registerLoadRouter(route);
  registered = true;
}
