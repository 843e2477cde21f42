// Moved to bench/tfjs/step.mjs; this path keeps the commands already written down (the tfjs
// README, the WebGPU issue) working, flags and output unchanged.
await import('./tfjs/step.mjs');
