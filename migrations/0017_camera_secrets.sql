-- Camera stream URLs are kept apart from their credentials: main_url and
-- sub_url hold the URL as shown (no credentials), main_secret and
-- sub_secret the pieces cut out of it, as camera/streamurl cuts them:
-- [{"at": byte offset in the URL shown, "text": the piece}], put back only
-- to pull the camera.
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS main_secret jsonb NOT NULL DEFAULT '[]',
                    ADD COLUMN IF NOT EXISTS sub_secret jsonb NOT NULL DEFAULT '[]';

-- Existing rows hold URLs with their credentials: move them out. SQL does
-- it more bluntly than camera/streamurl (re-saving a camera splits its URL
-- finely): the userinfo, and everything from the path segment or query
-- where the first key that may carry a secret appears. Joined back, each
-- URL is exactly what was stored. Safe to run again: rows already split
-- have nothing left to cut.
CREATE FUNCTION pg_temp.split_stream_url(u text) RETURNS TABLE (public text, secret jsonb) LANGUAGE plpgsql AS $$
DECLARE
    pre text := coalesce(substring(u from '^[A-Za-z][A-Za-z0-9+.-]*://'), '');
    rest text := substr(u, length(pre) + 1);
    authority text := CASE WHEN pre = '' THEN '' ELSE substring(rest from '^[^/?#]*') END;
    tail text := substr(rest, length(authority) + 1);
    userinfo text := coalesce(substring(authority from '^(.*@)'), '');
    host text := substr(authority, length(userinfo) + 1);
    hit int := regexp_instr(tail, '(pass|pwd|secret|token|auth|cred|sig|key|user|usr|login|account|session|pin|code|ticket|jwt|otp|hash|nonce|cert)[A-Za-z0-9_.%~+-]*=', 1, 1, 0, 'i');
    cut_from int;
    kept text := tail;
    cut text := '';
    parts jsonb := '[]';
BEGIN
    IF hit > 0 THEN
        -- From the '/' or '?' (or '#') that opens the segment holding the hit.
        cut_from := hit;
        WHILE cut_from > 1 AND substr(tail, cut_from, 1) NOT IN ('/', '?', '#') LOOP
            cut_from := cut_from - 1;
        END LOOP;
        kept := substr(tail, 1, cut_from - 1);
        cut := substr(tail, cut_from);
    END IF;
    IF userinfo <> '' THEN
        parts := parts || jsonb_build_array(jsonb_build_object('at', octet_length(pre), 'text', userinfo));
    END IF;
    IF cut <> '' THEN
        parts := parts || jsonb_build_array(jsonb_build_object('at', octet_length(pre || host || kept), 'text', cut));
    END IF;
    RETURN QUERY SELECT pre || host || kept, parts;
END $$;

UPDATE cameras c SET main_url = m.public, main_secret = m.secret, sub_url = s.public, sub_secret = s.secret
FROM cameras c2
    CROSS JOIN LATERAL pg_temp.split_stream_url(c2.main_url) m
    CROSS JOIN LATERAL pg_temp.split_stream_url(c2.sub_url) s
WHERE c.id = c2.id AND c2.main_secret = '[]' AND c2.sub_secret = '[]' AND (m.secret <> '[]' OR s.secret <> '[]');

DROP FUNCTION pg_temp.split_stream_url(text);
