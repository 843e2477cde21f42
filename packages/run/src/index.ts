export { launch, CONTRACT_VARS, type LaunchOptions, type LaunchResult } from './launch.js';
export { parseHostList, parseHostfile, readHostfile, placeRanks, isLocalHost, UsageError, type HostSlots, type Placement } from './hosts.js';
export { LineTagger, type LineSink } from './output.js';
export { chooseAddress, sourceAddressFor } from './address.js';
export { check, formatCheck, type CheckReport } from './check.js';
export { shellQuote, splitWords } from './shell.js';
