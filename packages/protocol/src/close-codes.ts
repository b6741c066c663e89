/**
 * WebSocket close codes of our own, beside RFC 6455's (1001 going away, 1007 invalid UTF-8,
 * 1009 frame too large, 1011 heartbeat timeout). Clients reconnect and resume after every code
 * except CLOSE_UNAUTHORIZED.
 */

/** The hello token was missing, invalid or expired, or no hello came in time: do not retry as is. */
export const CLOSE_UNAUTHORIZED = 4401;

/**
 * The socket stopped reading: more than MAX_SOCKET_BUFFER bytes waited to be sent to it. A normal
 * drop for the client, which reconnects and resumes each response from its last seq.
 */
export const CLOSE_SLOW_CONSUMER = 4008;
