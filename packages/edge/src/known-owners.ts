/** Owners of rids this edge has looked up lately (a rid's owner never changes). */
const KNOWN_OWNERS = 10_000;

/** rid → owner for the most recently seen rids: lets a cancel skip the record read. */
export class KnownOwners {
  private readonly owners = new Map<string, string>();

  set(rid: string, owner: string): void {
    this.owners.delete(rid);
    this.owners.set(rid, owner);
    if (this.owners.size > KNOWN_OWNERS) this.owners.delete(this.owners.keys().next().value as string);
  }

  get(rid: string): string | undefined {
    return this.owners.get(rid);
  }
}
