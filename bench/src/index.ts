export { busbwFactor, parseSize, sweepSizes, formatRow, HEADER, COLLECTIVES, type Collective, type Row } from './metrics.js';
export { runSweep, type SweepOptions } from './sweep.js';
export { runPeer, missing, PEERS, type Peer, type PeerRow } from './peers.js';
export { svgPlot, type Series } from './plot.js';
