import { describe, expect, it } from "vitest";
import { type ServerEvent, readEvents } from "../src/sse.ts";

function body(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

describe("readEvents", () => {
  it("joins events split across chunks, CRLF included, and skips keep-alives", async () => {
    const events: ServerEvent[] = [];
    let activity = 0;
    await readEvents(
      body([": keep-alive\n\nevent: job\r", "\nid: \"1-a\"\r\ndata: {\"a\":", "1}\r\n\r", "\ndata: x\n\n"]),
      (event) => events.push(event),
      () => (activity += 1),
    );

    expect(events).toEqual([
      { event: "job", id: '"1-a"', data: '{"a":1}' },
      { event: "message", id: null, data: "x" },
    ]);
    expect(activity).toBe(4);
  });
});
