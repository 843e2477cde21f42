/** ringbench as a library: run sweeps and peers from code, format and plot their results. */
export { runSweep, SweepError, type SweepRun, type ProgressEvent } from './sweep.js';
export { runPeer, peerStatus, PEERS, type Peer, type PeerRun, type PeerStatus } from './peers.js';
export { writePlot, renderSvg, plotSpec, type Series } from './plot.js';
export { LINE_TAG, type WorkerConfig } from './config.js';
export {
  COLLECTIVES, busFactor, algbw, parseSize, formatSize, sweepSizes, summarize, avgBusbw, median, percentile,
  tableHeader, tableRow, tableFooter, parseTable, type Collective, type RawRow, type Row, type Result,
} from './table.js';
