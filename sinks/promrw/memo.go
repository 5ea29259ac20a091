package promrw

// setMemo maps a base, a metric name and an interned attribute set (all
// three ids that are never given twice, see idTable) to the series cache
// slot of their series: an open-addressing table (linear probing), because
// a Go map with a struct key cost more than the key bytes it saves making.
// Its entries hold from batch to batch, until the cache evicts an entry
// (which may free a slot the memo names) or the table would outgrow
// maxMemoSlots. Entries of an older generation are empty, so that reset is
// one increment however large the table grew.
type setMemo struct {
	slots []memoSlot
	n     int    // entries of this generation
	gen   uint32 // this generation; 0 is never one
}

type memoSlot struct {
	key  memoKey
	gen  uint32
	slot uint32
}

type memoKey struct {
	base, name, set uint64
}

// maxMemoSlots bounds the table: half as many series, 4 MiB.
const maxMemoSlots = 1 << 17

func (k memoKey) hash() uint64 {
	h := k.base*0x9e3779b97f4a7c15 ^ k.name*0xc2b2ae3d27d4eb4f ^ k.set*0x165667b19e3779f9
	return h ^ h>>29
}

// reset empties the memo.
func (m *setMemo) reset() {
	m.n = 0
	m.gen++
	if m.gen == 0 || len(m.slots) > maxMemoSlots {
		m.slots, m.gen = nil, 1
	}
}

// get returns the slot of k.
func (m *setMemo) get(k memoKey) (uint32, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(m.slots) - 1)
	for i := k.hash() & mask; ; i = (i + 1) & mask {
		e := &m.slots[i]
		if e.gen != m.gen {
			return 0, false
		}
		if e.key == k {
			return e.slot, true
		}
	}
}

// put sets the slot of k, which get did not find. A full table at its
// bound starts again empty.
func (m *setMemo) put(k memoKey, slot uint32) {
	if 2*(m.n+1) > len(m.slots) {
		if len(m.slots) >= maxMemoSlots {
			m.reset()
		} else {
			m.grow()
		}
	}
	mask := uint64(len(m.slots) - 1)
	i := k.hash() & mask
	for m.slots[i].gen == m.gen {
		i = (i + 1) & mask
	}
	m.slots[i] = memoSlot{k, m.gen, slot}
	m.n++
}

func (m *setMemo) grow() {
	if m.gen == 0 { // a new memo: its first generation
		m.gen = 1
	}
	old, gen := m.slots, m.gen
	m.slots = make([]memoSlot, max(64, 2*len(old)))
	m.n = 0
	for _, e := range old {
		if e.gen == gen {
			m.put(e.key, e.slot)
		}
	}
}
