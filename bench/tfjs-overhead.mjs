// Moved to bench/tfjs/overhead.mjs; this path keeps the commands already written down (the tfjs
// README) working, flags and output unchanged.
await import('./tfjs/overhead.mjs');
