export { chooseAddress, sourceAddressFor } from './address.js';
export { type CheckReport, check, formatCheck } from './check.js';
export { type DiscoveryResult, parseDiscovery, runDiscovery } from './discovery.js';
export {
  DEFAULT_DISCOVERY_INTERVAL_MS,
  DEFAULT_HOST_COOLDOWN_MS,
  type ElasticLaunchOptions,
  type ElasticOptions,
  launchElastic,
} from './elastic.js';
export {
  type HostSlots,
  isLocalHost,
  type Placement,
  parseHostfile,
  parseHostList,
  placeRanks,
  readHostfile,
  UsageError,
} from './hosts.js';
export { CONTRACT_VARS, type LaunchOptions, type LaunchResult, launch, type TlsFiles } from './launch.js';
export { type LineSink, LineTagger } from './output.js';
export { shellQuote, splitWords } from './shell.js';
export { type CaFiles, createJobTls, issueCert, type JobTls, type MemberFiles, makeCa } from './tls-ca.js';
