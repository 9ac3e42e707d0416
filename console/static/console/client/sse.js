// Generated from clients/typescript/src by `node scripts/console.mjs write` (there).
// Do not edit: make test-client fails when it differs from a fresh build.
/**
 * A `text/event-stream` reader over a fetch Response body (EventSource cannot send an
 * Authorization header). Comments (`: keep-alive`) count as activity but are no events.
 */
/**
 * Calls `onEvent` for each complete event and `onActivity` for every chunk read; resolves
 * when the server ends the stream, rejects when the connection fails or is aborted.
 */
export async function readEvents(body, onEvent, onActivity = () => { }) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
        for (;;) {
            const { value, done } = await reader.read();
            if (done)
                return;
            onActivity();
            // Line ends are normalized to \n; a \r ending a chunk waits for the next one, whose
            // first character may be the \n of the same CRLF.
            const text = buffer + decoder.decode(value, { stream: true });
            const held = text.endsWith("\r") ? "\r" : "";
            buffer = text.slice(0, text.length - held.length).replace(/\r\n?/g, "\n") + held;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                const event = parseBlock(block);
                if (event)
                    onEvent(event);
            }
        }
    }
    finally {
        reader.releaseLock();
    }
}
function parseBlock(block) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
        if (line.startsWith(":"))
            continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const field = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event")
            event = field;
        else if (name === "id")
            id = field;
        else if (name === "data")
            data.push(field);
    }
    return data.length ? { event, id, data: data.join("\n") } : null;
}
