#!/usr/bin/env python3
"""Reference NeuroX neuron ordering in NumPy.

The `elastic-net` selector plugin (plugins/selector-elastic-net) must give
the same ordering and cutoffs as this script; its test
`plugins/selector-elastic-net/tests/neurox_equivalence.rs` runs both.

The structure follows NeuroX (`neurox.interpretation.linear_probe`):
`get_top_neurons(weights, percentage)` keeps, per class, the heaviest
neurons by |w| up to the first whose cumulative |w| reaches
`percentage * total`, and returns the union over classes;
`get_neuron_ordering(weights, search_stride)` calls it for
`p / search_stride`, p = 0..search_stride, and appends the new neurons of
each step, recording the ordering's length after each step as a cutoff.

Deliberate differences from NeuroX, shared with the plugin (see
plugins/selector-elastic-net/src/ordering.rs for the reasons):
  * float64 throughout; a class's total is the last entry of its cumsum;
  * ties in |w| go to the lower index; new neurons within a step are ordered
    by total mass (sum over classes of |w|) descending, then index;
  * a class whose weights are all zero selects nothing;
  * neurons never reached are appended last (by mass, then index) with a
    final cutoff.

Usage: neurox_ordering.py WEIGHTS.json
WEIGHTS.json: {"weights": [[w, ...], ...] (classes x features), "stride": N}
Prints JSON: {"order": [...], "cutoffs": [...]}.
"""

import json
import sys

import numpy as np


def weight_mass(weights):
    # Summed class by class, in order, like the plugin (so equal masses tie
    # identically on both sides).
    mass = np.zeros(weights.shape[1])
    for row in np.abs(weights):
        mass += row
    return mass


def by_mass(neurons, mass):
    return sorted(neurons, key=lambda j: (-mass[j], j))


def get_top_neurons(weights, percentage):
    weights = np.abs(weights)
    num_neurons = weights.shape[1]
    top_neurons = {}
    for c in range(weights.shape[0]):
        # Descending |w|, ties by ascending index (lexsort: last key first).
        sort_idx = np.lexsort((np.arange(num_neurons), -weights[c, :]))
        cum_sums = np.cumsum(weights[c, sort_idx])
        total_mass = cum_sums[-1]
        if total_mass <= 0:
            top_neurons[c] = np.array([], dtype=int)
            continue
        unselected_neurons = np.where(cum_sums >= total_mass * percentage)[0]
        if unselected_neurons.shape[0] == 0:
            selected_neurons = np.arange(cum_sums.shape[0])
        else:
            selected_neurons = np.arange(unselected_neurons[0] + 1)
        top_neurons[c] = sort_idx[selected_neurons]

    top_neurons_union = set()
    for c in top_neurons:
        for t in top_neurons[c]:
            top_neurons_union.add(int(t))
    return np.array(sorted(top_neurons_union), dtype=int), top_neurons


def get_neuron_ordering(weights, search_stride):
    mass = weight_mass(weights)
    neuron_orderings = [
        get_top_neurons(weights, p / search_stride)[0] for p in range(search_stride + 1)
    ]
    considered_neurons = set()
    ordering = []
    cutoffs = []
    for local_ordering in neuron_orderings:
        new_neurons = set(int(j) for j in local_ordering).difference(considered_neurons)
        ordering = ordering + by_mass(new_neurons, mass)
        considered_neurons = considered_neurons.union(new_neurons)
        cutoffs.append(len(ordering))

    rest = set(range(weights.shape[1])).difference(considered_neurons)
    if rest:
        ordering = ordering + by_mass(rest, mass)
        cutoffs.append(len(ordering))
    return ordering, cutoffs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    # The probe's weights are float32; the JSON holds their shortest
    # decimal form, which float32 reads back exactly.
    weights = np.array(spec["weights"], dtype=np.float32).astype(np.float64)
    ordering, cutoffs = get_neuron_ordering(weights, int(spec["stride"]))
    json.dump({"order": ordering, "cutoffs": cutoffs}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
