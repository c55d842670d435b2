-- Tidies titles that arrive in release-name form: "the.matrix.1999" -> "The Matrix",
-- trims stray spaces, and drops a trailing "(YYYY)" that repeats the year field.

function hook(event)
  local item = event.data.media_item
  if type(item) ~= "table" or type(item.title) ~= "string" then return nil end
  local title = item.title

  -- Dotted or underscored release names: only when there are no spaces at all.
  if not string.find(title, " ") and string.find(title, "[%._]") then
    title = string.gsub(title, "[%._]+", " ")
    title = string.gsub(title, " (%d%d%d%d)$", "")
    title = string.gsub(title, "(%a)([%w']*)", function(first, rest)
      return string.upper(first) .. rest
    end)
  end
  title = string.gsub(title, "%s+", " ")
  title = string.match(title, "^%s*(.-)%s*$")
  if item.year then
    title = string.gsub(title, " %(" .. tostring(item.year) .. "%)$", "")
  end

  if title ~= item.title then
    log.info("title fixed: '" .. item.title .. "' -> '" .. title .. "'")
    item.title = title
    return event
  end
  return nil
end
