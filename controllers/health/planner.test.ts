import { describe, expect, it } from 'vitest';
import type { ProbeSpec } from '../../manifest/types.js';
import { aContainer } from '../../test/builders.js';
import type { HealthAction } from './actions.js';
import { planHealth, probeSpecsOf, type HealthInput, type ProbeView } from './planner.js';
import { aSpec } from '../../test/builders.js';
import type { ProbeCounters } from './probe-state.js';

const NOW = Date.parse('2026-01-01T00:00:10.000Z');
const probe = (over: Partial<ProbeSpec> = {}): ProbeSpec => ({
  check: { kind: 'http', path: '/ready' },
  intervalSecs: 1,
  timeoutSecs: 1,
  failureThreshold: 3,
  successThreshold: 1,
  initialDelaySecs: 2,
  ...over,
});
const READY = probe();
const LIVE = probe({ check: { kind: 'tcp' }, initialDelaySecs: 30 });
// Started at 00:00:00, i.e. 10 s before NOW.
const a = { ...aContainer({ instance: 'a' }), id: 'ca' };
const b = { ...aContainer({ instance: 'b' }), id: 'cb' };
const exitedB = { ...aContainer({ instance: 'b', status: 'exited' }), id: 'cb' };

const counters = (status: ProbeCounters['status'], failures = 0): ProbeCounters => ({ successes: status === 'passing' ? 1 : 0, failures, status });
const view = (instance: string, kind: 'readiness' | 'liveness', status: ProbeCounters['status'], reported: ProbeCounters['status'], over: Partial<ProbeView> = {}): ProbeView => ({
  instance,
  containerId: `c${instance}`,
  kind,
  spec: kind === 'readiness' ? READY : LIVE,
  servicePort: 80,
  ports: { '80': 49153 },
  counters: counters(status, status === 'failing' ? 3 : 0),
  lastDetail: status === 'failing' ? 'connection refused' : 'HTTP 200',
  reported,
  ...over,
});

const input = (over: Partial<HealthInput>): HealthInput => ({
  service: 'web',
  desired: { readiness: READY, liveness: LIVE, servicePort: 80 },
  observed: [],
  condemned: new Set(),
  advertise: '127.0.0.3',
  probes: [],
  now: NOW,
  ...over,
});

/** Actions in a few words: "kind instance[/probe][ +firstInMs][: message]". */
const brief = (actions: HealthAction[]) =>
  actions.map((x) => {
    if (x.kind === 'probe.start') return `${x.kind} ${x.instance}/${x.probe} +${x.firstInMs}`;
    if (x.kind === 'probe.stop') return `${x.kind} ${x.instance}`;
    return `${x.kind} ${x.instance}: ${x.message}`;
  });

describe('planHealth', () => {
  it.each<[string, Partial<HealthInput>, string[]]>([
    ['a new running container gets its probes, first checks after initial delay from its start', { observed: [a] }, ['probe.start a/readiness +0', 'probe.start a/liveness +20000']],
    ['no desired spec: nothing is started', { desired: null, observed: [a] }, []],
    ['a spec without probes: nothing is started', { desired: { servicePort: 80 }, observed: [a] }, []],
    ['only the probes that are missing start', { observed: [a], probes: [view('a', 'readiness', 'unknown', 'unknown')] }, ['probe.start a/liveness +20000']],
    ['an exited container is not probed; its probes stop', { observed: [a, exitedB], probes: [view('b', 'readiness', 'passing', 'passing'), view('b', 'liveness', 'passing', 'passing')] }, ['probe.stop b', 'probe.start a/readiness +0', 'probe.start a/liveness +20000']],
    ['a condemned instance is not probed', { observed: [a], condemned: new Set(['a']), probes: [view('a', 'readiness', 'passing', 'passing')] }, ['probe.stop a']],
    ['the service is no longer assigned here: every probe stops', { desired: null, observed: [a], probes: [view('a', 'readiness', 'passing', 'passing')] }, ['probe.stop a']],
    ['readiness passed and not yet acted on: ready', { observed: [a], probes: [view('a', 'readiness', 'passing', 'unknown'), view('a', 'liveness', 'passing', 'passing')] }, ['instance.ready a: HTTP 200']],
    ['readiness failed after being ready: unready', { observed: [a], probes: [view('a', 'readiness', 'failing', 'passing'), view('a', 'liveness', 'passing', 'passing')] }, ['instance.unready a: connection refused']],
    ['readiness failed before it ever passed: unready', { observed: [a], probes: [view('a', 'readiness', 'failing', 'unknown'), view('a', 'liveness', 'passing', 'passing')] }, ['instance.unready a: connection refused']],
    ['a verdict already acted on: nothing', { observed: [a], probes: [view('a', 'readiness', 'failing', 'failing'), view('a', 'liveness', 'passing', 'passing')] }, []],
    ['no answer yet: nothing', { observed: [a], probes: [view('a', 'readiness', 'unknown', 'unknown'), view('a', 'liveness', 'passing', 'passing')] }, []],
    ['liveness failed: liveness-failed, with the probe and the count', { observed: [a], probes: [view('a', 'readiness', 'passing', 'passing'), view('a', 'liveness', 'failing', 'passing')] }, ['instance.liveness-failed a: TCP :80 failed 3 times: connection refused']],
    ['a container publishing on other host ports now (re-attached to its network) gets fresh probes there', { observed: [{ ...a, ports: { '80': 49999 }, hostPort: 49999 }], probes: [view('a', 'readiness', 'failing', 'failing'), view('a', 'liveness', 'passing', 'passing')] }, ['probe.stop a', 'probe.start a/readiness +0', 'probe.start a/liveness +20000']],
    ['a container that publishes nothing any more (off its network) is probed as such', { observed: [{ ...a, ports: {}, hostPort: null }], probes: [view('a', 'readiness', 'passing', 'passing')] }, ['probe.stop a', 'probe.start a/readiness +0', 'probe.start a/liveness +20000']],
    ['a container replaced under the same instance gets fresh probes', { observed: [{ ...a, id: 'ca2' }], probes: [view('a', 'readiness', 'passing', 'passing')] }, ['probe.stop a', 'probe.start a/readiness +0', 'probe.start a/liveness +20000']],
  ])('%s', (_name, over, want) => {
    expect(brief(planHealth(input(over)))).toEqual(want);
  });

  it('probes reach the container where Docker published it, else the node’s advertise address', () => {
    const [withIp] = planHealth(input({ observed: [a], desired: { readiness: READY, servicePort: 80 } }));
    expect(withIp).toMatchObject({ kind: 'probe.start', target: { host: '127.0.0.1', ports: { '80': 49153 }, containerId: 'ca', servicePort: 80 } });
    const [without] = planHealth(input({ observed: [{ ...a, hostIp: null }], desired: { readiness: READY } }));
    expect(without).toMatchObject({ kind: 'probe.start', target: { host: '127.0.0.3' } });
  });

  it('is idempotent: once the actions are applied, planning again gives none', () => {
    const first = planHealth(input({ observed: [a, b] }));
    const probes: ProbeView[] = first.flatMap((x) => (x.kind === 'probe.start' ? [view(x.instance, x.probe, x.probe === 'readiness' ? 'unknown' : 'passing', x.probe === 'readiness' ? 'unknown' : 'passing', { containerId: x.target.containerId })] : []));
    expect(probes).toHaveLength(4);
    expect(planHealth(input({ observed: [a, b], probes }))).toEqual([]);
  });

  it('probeSpecsOf: the manifest’s probes, the implicit TCP readiness of a port, none without either', () => {
    expect(probeSpecsOf(undefined)).toBeNull();
    expect(probeSpecsOf(aSpec())).toEqual({});
    expect(probeSpecsOf(aSpec({ port: 80 }))).toMatchObject({ readiness: { check: { kind: 'tcp', port: 80 } }, servicePort: 80 });
    expect(probeSpecsOf(aSpec({ port: 80, readiness: READY, liveness: LIVE }))).toEqual({ readiness: READY, liveness: LIVE, servicePort: 80 });
  });
});
