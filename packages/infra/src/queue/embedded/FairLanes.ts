/**
 * Items waiting, taken in turns: one tenant after another, and within a tenant one device after another, each
 * device's items in the order they came. So a device with a long backlog delays another tenant's item by at most
 * one item, not by its whole backlog. Not safe across threads; a fiber's synchronous step is atomic.
 */
export class FairLanes<A> {
  // A Map keeps the order keys were set in: the first key is next, and moving a key to the end ends its turn.
  private readonly tenants = new Map<string, Map<string, Array<A>>>()
  private count = 0

  constructor(private readonly laneOf: (item: A) => { readonly tenant: string; readonly device: string }) {}

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
    const [tenant, devices] = first(this.tenants) ?? []
    if (tenant === undefined || devices === undefined) return undefined
    const [device, items] = first(devices)!
    const item = items.shift()!
    endTurn(devices, device, items.length > 0 ? items : undefined)
    endTurn(this.tenants, tenant, devices.size > 0 ? devices : undefined)
    this.count -= 1
    return item
  }
}

const first = <K, V>(map: Map<K, V>): [K, V] | undefined => map.entries().next().value

/** Moves `key` behind the others, or drops it when it has nothing left. */
const endTurn = <K, V>(map: Map<K, V>, key: K, rest: V | undefined) => {
  map.delete(key)
  if (rest !== undefined) map.set(key, rest)
}
