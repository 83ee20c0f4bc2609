import { describe, expect, it } from 'vitest';
import { instanceLabels, LABEL, parseInstanceLabels, type InstanceLabels } from './labels.js';

const mine: InstanceLabels = { cluster: 'c1', service: 'web', instance: 'web-3-0-abcd', slot: 0, revision: 3, specHash: 'h-new', node: 'n1' };

describe('instance labels', () => {
  it('are written with the instance hash under orca.instance-hash, never the old name, and read back', () => {
    const labels = instanceLabels(mine, { team: 'a' });
    expect(labels).toMatchObject({ 'orca.instance-hash': 'h-new', team: 'a' });
    expect(labels).not.toHaveProperty('orca.spec-hash');
    expect(parseInstanceLabels(labels)).toEqual(mine);
  });

  it("adopt a container made by an earlier version (the hash under its old name, orca.spec-hash)", () => {
    const { [LABEL.instanceHash]: _new, ...legacy } = instanceLabels(mine);
    const old = { ...legacy, 'orca.spec-hash': 'h-old' };
    expect(parseInstanceLabels(old)).toEqual({ ...mine, specHash: 'h-old' });
  });

  it('prefer the new name when both are there', () => {
    expect(parseInstanceLabels({ ...instanceLabels(mine), 'orca.spec-hash': 'h-old' })?.specHash).toBe('h-new');
  });

  it.each([LABEL.cluster, LABEL.service, LABEL.instance, LABEL.node, LABEL.slot, LABEL.revision])('without %s: an orphan (undefined)', (label) => {
    const { [label]: _gone, ...rest } = instanceLabels(mine);
    expect(parseInstanceLabels(rest)).toBeUndefined();
  });

  it('without any instance hash, or with a bad slot or revision: an orphan', () => {
    const { [LABEL.instanceHash]: _gone, ...noHash } = instanceLabels(mine);
    expect(parseInstanceLabels(noHash)).toBeUndefined();
    expect(parseInstanceLabels({ ...instanceLabels(mine), [LABEL.slot]: '-1' })).toBeUndefined();
    expect(parseInstanceLabels({ ...instanceLabels(mine), [LABEL.revision]: '0' })).toBeUndefined();
  });
});
