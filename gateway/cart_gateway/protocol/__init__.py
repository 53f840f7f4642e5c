"""docs/protocol.md (version 1) in code: the typed messages and their decoders.

Every decoder takes the raw MQTT topic and payload and returns a typed
message, or raises ProtocolError whose text names the topic part or the
field that was wrong. Nothing here does I/O.

One job a module; callers import the names from here (`from cart_gateway import protocol as P`):
- `base`: the version, §15 size limits and value ranges, ids, `ProtocolError`, typed number fields
- `topics`: the topic tree (§2)
- `board_messages`: a board's status, events, telemetry, commands and their results (§4-9)
- `screen_messages`: the shopper's answers, the checkout request, the reviewer's verdicts (§11-13)
- `decoding`: the JSON checks every payload passes, and the decoders of what reaches the gateway
- `gateway_messages`: what the gateway publishes (§4, §10-13), and `decode_output` for its readers
- `frame_chunks`: frame and still chunks and their reassembly (§7)
- `traces`: trace files (§14)
"""
from .base import (BOARDS, ID_RE, INST_RE, MAX_CHUNK_PAYLOAD, MAX_COMMAND_BYTES, MAX_COUNT, MAX_DEPTH,
                   MAX_DURATION_MS, MAX_FRAME_BYTES, MAX_FRAME_CHUNKS, MAX_GRAMS, MAX_INT, MAX_JSON_BYTES,
                   MAX_STILL_BYTES, MAX_STILL_CHUNKS, MAX_TIME_MS, PROTOCOL_VERSION, STILL_RESOLUTIONS, Count,
                   DurationMs, Grams, PosGrams, ProtocolError, TimeMs)
from .board_messages import (BoardHeader, CaptureEvent, Command, CommandResult, ErrorEvent, Event, Status,
                             StillInfo, Telemetry, UnsettledEvent, WeightEvent, Window)
from .decoding import (decode_answer, decode_checkout, decode_command, decode_command_result, decode_event,
                       decode_status, decode_telemetry, decode_verdict)
from .frame_chunks import CHUNK_HEADER, FrameAssembler, FrameChunk, decode_frame_chunk
from .gateway_messages import (Basket, BasketLine, Candidate, GatewayStatus, Prompt, PromptOption, Receipt,
                               ReviewQueue, ReviewRequest, ReviewSummary, ScreenState, decode_output)
from .screen_messages import MAX_MULTI, Answer, CheckoutRequest, Choice, Verdict, VerdictItem
from .topics import Topic, parse_topic
from .traces import TraceRecord, read_trace, trace_line

__all__ = ["BOARDS", "ID_RE", "INST_RE", "MAX_CHUNK_PAYLOAD", "MAX_COMMAND_BYTES", "MAX_COUNT", "MAX_DEPTH",
           "MAX_DURATION_MS", "MAX_FRAME_BYTES", "MAX_FRAME_CHUNKS", "MAX_GRAMS", "MAX_INT",
           "MAX_JSON_BYTES", "MAX_STILL_BYTES", "MAX_STILL_CHUNKS", "MAX_TIME_MS", "PROTOCOL_VERSION",
           "STILL_RESOLUTIONS", "Count", "DurationMs", "Grams", "PosGrams", "ProtocolError", "TimeMs",
           "BoardHeader", "CaptureEvent", "Command", "CommandResult", "ErrorEvent", "Event", "Status",
           "StillInfo", "Telemetry", "UnsettledEvent", "WeightEvent", "Window", "decode_answer",
           "decode_checkout", "decode_command", "decode_command_result", "decode_event", "decode_status",
           "decode_telemetry", "decode_verdict", "CHUNK_HEADER", "FrameAssembler", "FrameChunk",
           "decode_frame_chunk", "Basket", "BasketLine", "Candidate", "GatewayStatus", "Prompt",
           "PromptOption", "Receipt", "ReviewQueue", "ReviewRequest", "ReviewSummary", "ScreenState",
           "decode_output", "MAX_MULTI", "Answer", "CheckoutRequest", "Choice", "Verdict", "VerdictItem",
           "Topic", "parse_topic", "TraceRecord", "read_trace", "trace_line"]
