// The live job page of the ringwire rendezvous: renders the snapshots of its event stream
// (/events, the same token as the page's URL). No dependencies, nothing loaded from elsewhere.

const token = new URLSearchParams(location.search).get('token') ?? '';
const jobsEl = document.getElementById('jobs');
const connEl = document.getElementById('conn');

/** An element with attributes and children (strings become text: job ids and hosts come from clients). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {}))
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

const SVG = 'http://www.w3.org/2000/svg';

/** A small line chart of bytes/s over the last reports. */
function spark(rate) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 100 22');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'spark');
  if (rate.length > 1) {
    const max = Math.max(1, ...rate.map((p) => p[1]));
    const step = 100 / (rate.length - 1);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute(
      'points',
      rate.map((p, i) => `${(i * step).toFixed(1)},${(21 - (p[1] / max) * 20).toFixed(1)}`).join(' '),
    );
    svg.append(line);
  }
  return svg;
}

function rankCard(member, m, stalledRanks) {
  const alive = member ? member.alive : true;
  const rate = m?.rate ?? [];
  const now = rate.length ? rate[rate.length - 1][1] : 0;
  const op = m?.running
    ? `${m.running.collective} ${bytes(m.running.bytes)} · ${m.running.ms} ms`
    : m
      ? 'idle'
      : 'no report yet';
  const cls = ['rank', alive ? '' : 'lost', stalledRanks.has(member?.rank ?? m?.rank) ? 'stalled' : ''];
  return h(
    'div',
    { class: cls.join(' ').trim(), 'data-rank': member?.rank ?? m?.rank, 'data-alive': alive },
    h(
      'div',
      { class: 'top' },
      h('span', { class: 'id' }, `rank ${member?.rank ?? m?.rank ?? '?'}`),
      h('span', { class: 'live' }, alive ? 'alive' : 'lost'),
    ),
    h('div', { class: 'op', title: op }, op),
    spark(rate),
    h(
      'div',
      { class: 'nums' },
      `${bytes(now)}/s · step ${m?.stepMs != null ? `${m.stepMs.toFixed(1)} ms` : '–'} · ${m?.ops ?? 0} ops`,
    ),
  );
}

function jobSection(job) {
  const metrics = new Map((job.ranks ?? []).map((m) => [m.rank, m]));
  const notes = [];
  const stalledRanks = new Set();
  for (const m of job.ranks ?? []) {
    if (m.stall) {
      stalledRanks.add(m.rank);
      notes.push(
        h(
          'li',
          { class: 'stall' },
          `rank ${m.rank}: stall, waiting for rank(s) ${m.stall.ranks.join(', ')}: ${m.stall.text}`,
        ),
      );
    }
  }
  if (job.abort)
    notes.push(
      h(
        'li',
        { class: 'error' },
        `job aborted (rank ${job.abort.rank}, ${job.abort.code}): ${job.abort.reason}`,
      ),
    );
  for (const m of job.ranks ?? [])
    if (m.error)
      notes.push(h('li', { class: 'error' }, `rank ${m.rank}: ${m.error.code}: ${m.error.message}`));
  for (const member of job.members)
    if (!member.alive)
      notes.push(
        h(
          'li',
          { class: 'error' },
          `rank ${member.rank} (${member.host}) lost: no connection for ${Math.round(member.lastSeenMsAgo / 1000)} s`,
        ),
      );

  // Ranks by host, hosts in order of their lowest rank.
  const hosts = new Map();
  for (const member of [...job.members].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9))) {
    if (!hosts.has(member.host)) hosts.set(member.host, []);
    hosts.get(member.host).push(member);
  }
  const history =
    Array.isArray(job.history) && job.history.length
      ? job.history
      : [{ generation: job.generation, size: job.size }];
  return h(
    'section',
    { class: 'job', 'data-job': job.id },
    h('h2', null, `job ${job.id} `, h('span', { class: `state ${job.state}` }, job.state)),
    h(
      'div',
      { class: 'facts' },
      h('span', null, `generation ${job.generation}`),
      h('span', null, `${job.joined}/${job.size ?? '?'} ranks`),
      h(
        'span',
        { class: 'history' },
        `generations: ${history.map((g) => `${g.generation}${g.size ? ` (${g.size} ranks${g.reason ? `, ${g.reason}` : ''})` : ''}`).join(' → ')}`,
      ),
    ),
    notes.length ? h('ul', { class: 'notes' }, notes) : null,
    [...hosts].map(([host, members]) =>
      h(
        'div',
        { class: 'host' },
        h('h3', null, `${host} · ${members.length} rank${members.length === 1 ? '' : 's'}`),
        h(
          'div',
          { class: 'ranks' },
          members.map((mm) => rankCard(mm, metrics.get(mm.rank), stalledRanks)),
        ),
      ),
    ),
  );
}

function render(snapshot) {
  const sections = snapshot.jobs.map(jobSection);
  jobsEl.replaceChildren(
    ...(sections.length ? sections : [h('p', { class: 'empty' }, 'No job is running.')]),
  );
}

const events = new EventSource(`/events?token=${encodeURIComponent(token)}`);
events.onopen = () => {
  connEl.textContent = 'live';
  connEl.className = 'conn live';
};
events.onmessage = (e) => render(JSON.parse(e.data));
events.onerror = () => {
  connEl.textContent = events.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
  connEl.className = 'conn';
};
