/** ringbench as a library: run sweeps and peers from code, format and plot their results. */

export { LINE_TAG, type WorkerConfig } from './config.js';
export { PEERS, type Peer, type PeerRun, type PeerStatus, peerStatus, runPeer } from './peers.js';
export { plotSpec, renderSvg, type Series, writePlot } from './plot.js';
export { type ProgressEvent, runSweep, SweepError, type SweepRun } from './sweep.js';
export {
  algbw,
  avgBusbw,
  busFactor,
  COLLECTIVES,
  type Collective,
  formatSize,
  median,
  parseSize,
  parseTable,
  percentile,
  type RawRow,
  type Result,
  type Row,
  summarize,
  sweepSizes,
  tableFooter,
  tableHeader,
  tableRow,
} from './table.js';
