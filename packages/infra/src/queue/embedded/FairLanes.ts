/**
 * Items waiting, taken in turns: one tenant after another, and within a tenant one device after another, each
 * device's items in the order they came. Tenants share by cost, not by count (fair queuing in virtual time): a
 * tenant's turn comes when its next item would start soonest, each item it took having moved that start on by the
 * item's cost. So a tenant whose items cost a hundred times another's waits for a hundred of the other's between two
 * of its own — one costly claim delays another tenant by at most that claim — and items of equal cost alternate
 * one by one. A tenant that had no item waiting starts at the present, with no credit for its idle time, but what it
 * took before still counts until the present passes it. Not safe across threads; a fiber's synchronous step is
 * atomic.
 */
export class FairLanes<A> {
  // A Map keeps the order keys were set in: the first key goes first among equals, and moving a key to the end
  // ends its turn.
  private readonly tenants = new Map<string, Map<string, Array<A>>>()
  /** Per tenant, the virtual time at which its next item may start: where its last one taken ended. */
  private readonly finishes = new Map<string, number>()
  /** The virtual time: when the item taken last started. */
  private now = 0
  private count = 0

  constructor(
    private readonly laneOf: (item: A) => { readonly tenant: string; readonly device: string },
    /** What taking an item costs, in any unit (> 0). */
    private readonly costOf: (item: A) => number = () => 1
  ) {}

  get size(): number {
    return this.count
  }

  push(item: A): void {
    const { device, tenant } = this.laneOf(item)
    const devices = this.tenants.get(tenant) ?? new Map<string, Array<A>>()
    const items = devices.get(device) ?? []
    items.push(item)
    devices.set(device, items)
    this.tenants.set(tenant, devices)
    this.count += 1
  }

  /** The next item in turn, or undefined when none waits. */
  shift(): A | undefined {
    let tenant: string | undefined
    let start = Infinity
    for (const name of this.tenants.keys()) {
      const at = Math.max(this.now, this.finishes.get(name) ?? this.now)
      if (at < start) [tenant, start] = [name, at]
    }
    if (tenant === undefined) return undefined
    const devices = this.tenants.get(tenant)!
    const [device, items] = first(devices)!
    const item = items.shift()!
    endTurn(devices, device, items.length > 0 ? items : undefined)
    endTurn(this.tenants, tenant, devices.size > 0 ? devices : undefined)
    this.count -= 1
    this.now = start
    this.finishes.set(tenant, start + this.costOf(item))
    // What ended before the present no longer holds anyone back.
    for (const [name, finish] of this.finishes) if (finish <= this.now) this.finishes.delete(name)
    return item
  }
}

const first = <K, V>(map: Map<K, V>): [K, V] | undefined => map.entries().next().value

/** Moves `key` behind the others, or drops it when it has nothing left. */
const endTurn = <K, V>(map: Map<K, V>, key: K, rest: V | undefined) => {
  map.delete(key)
  if (rest !== undefined) map.set(key, rest)
}
