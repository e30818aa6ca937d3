/**
 * Waiting for the library's own diagnostics events in tests, so a test
 * waits for what happened (a renewal landed) rather than for a time.
 */
import diagnostics from 'node:diagnostics_channel';
import { channels, type RoundEvent } from '../../src/index.js';

/** Resolves with the next successful extend round (a renewal) of `resource`. */
export function nextExtend(resource: string): Promise<RoundEvent> {
  return new Promise((resolve) => {
    const onExtend = (message: unknown) => {
      const event = message as RoundEvent;
      if (event.ok && event.resources.includes(resource)) {
        diagnostics.unsubscribe(channels.extend, onExtend);
        resolve(event);
      }
    };
    diagnostics.subscribe(channels.extend, onExtend);
  });
}
