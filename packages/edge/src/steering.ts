import { setTimeout as sleep } from "node:timers/promises";
import { ProtocolError, type ControlRequest, type ResponseRecord } from "@unbroken/protocol";
import { toProtocolError, type Broker, type ControlOutcome } from "@unbroken/store";
import type { Principal } from "./auth.js";
import { SteerCounts } from "./budgets.js";
import type { EdgeLimits } from "./config.js";
import { TokenBuckets, rateLimited } from "./limits.js";

/** Steers recorded on a queued response's record, at most. */
const MAX_QUEUED_STEERS = 32;

/** What steering needs of the response service: who may steer, and the worker's control subject. */
export interface SteeringDeps {
  authorize(principal: Principal, rid: string): Promise<ResponseRecord>;
  control(rid: string, req: ControlRequest): Promise<ControlOutcome>;
}

/**
 * Steers, whichever way they come (socket, REST, the Responses API): the budgets per response
 * and per owner, then delivery to the running worker, or onto the record while queued.
 */
export class Steering {
  private readonly steerBuckets: TokenBuckets;
  private readonly ownerSteerBuckets: TokenBuckets;
  private readonly steerCounts = new SteerCounts();

  constructor(
    private readonly broker: Broker,
    private readonly limits: EdgeLimits,
    private readonly deps: SteeringDeps,
  ) {
    this.steerBuckets = new TokenBuckets(limits.steerRate, limits.steerBurst);
    this.ownerSteerBuckets = new TokenBuckets(limits.steerRatePerOwner, limits.steerBurstPerOwner);
  }

  async steer(principal: Principal, rid: string, text: string): Promise<void> {
    const record = await this.deps.authorize(principal, rid);
    const finished = new ProtocolError("finished", "the response has ended", { rid });
    if (record.status !== "ended") this.admitSteer(record);
    try {
      await this.deliverSteer(principal, rid, text, record, finished);
    } catch (err) {
      // Not taken: it restarts nothing, so it does not count toward MAX_STEERS_PER_RESPONSE.
      if (err instanceof ProtocolError && err.code === "finished") this.steerCounts.forget(rid);
      else this.steerCounts.add(rid, -1);
      throw err;
    }
  }

  /**
   * The steer budgets, cheapest refusal first: the response's total (MAX_STEERS_PER_RESPONSE),
   * its rate (STEER_RATE), its owner's rate over all its responses (STEER_RATE_PER_OWNER; the
   * owner of the record, also when a response-scoped token steers: the cost is the owner's).
   * Counted by this edge; a steer that passes counts toward the total.
   */
  private admitSteer(record: ResponseRecord): void {
    const { rid, owner } = record;
    const l = this.limits;
    if (this.steerCounts.get(rid) >= l.maxSteersPerResponse) {
      throw rateLimited(
        `this response has taken ${l.maxSteersPerResponse} steers, the most one may (MAX_STEERS_PER_RESPONSE): each restarts its generation`,
        rid,
      );
    }
    if (!this.steerBuckets.take(rid)) {
      throw rateLimited(
        `steering too fast: at most ${l.steerRate} per second per response, ${l.steerBurst} at once (STEER_RATE, STEER_BURST)`,
        rid,
      );
    }
    if (!this.ownerSteerBuckets.take(owner)) {
      throw rateLimited(
        `steering too fast: at most ${l.steerRatePerOwner} per second per owner over all its responses, ${l.steerBurstPerOwner} at once (STEER_RATE_PER_OWNER, STEER_BURST_PER_OWNER)`,
        rid,
      );
    }
    this.steerCounts.add(rid, 1);
  }

  private async deliverSteer(
    principal: Principal,
    rid: string,
    text: string,
    first: ResponseRecord,
    finished: ProtocolError,
  ): Promise<void> {
    let record = first;
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        if (record.status === "ended") throw finished;
        if (record.status === "queued") {
          if (await this.recordQueuedSteer(rid, text)) return;
        } else {
          const reply = await this.deps.control(rid, { op: "steer", text });
          if (reply === "no_worker" || reply === "no_reply") {
            if (await this.broker.lifecycle.hasEnded(rid)) throw finished;
          } else if (reply.ok) {
            return;
          } else if (reply.code === "finished") {
            throw finished;
          }
        }
        await sleep(50 * (attempt + 1));
        record = await this.deps.authorize(principal, rid);
      }
    } catch (err) {
      throw toProtocolError(err, rid);
    }
    throw new ProtocolError("unavailable", "the steer could not be delivered; retry", { rid });
  }

  private async recordQueuedSteer(rid: string, text: string): Promise<boolean> {
    let applied = false;
    await this.broker.records.mutate(rid, (r) => {
      applied = false;
      if (r.status !== "queued") return null;
      if (r.steers.length >= MAX_QUEUED_STEERS) throw new ProtocolError("rate_limited", "too many steers", { rid });
      applied = true;
      return { ...r, steers: [...r.steers, text] };
    });
    return applied;
  }
}
