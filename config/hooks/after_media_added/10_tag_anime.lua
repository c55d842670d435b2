-- Tags Japanese animation as anime, so notifications and later hooks can tell.
-- Runs first (10_) on every after_media_added event.

local function has(list, wanted)
  if type(list) ~= "table" then return false end
  for _, v in ipairs(list) do
    if type(v) == "string" and string.lower(v) == wanted then return true end
  end
  return false
end

function hook(event)
  local item = event.data.media_item
  if type(item) ~= "table" then return nil end
  local metadata = item.metadata or {}
  local japanese = item.original_language == "ja" or metadata.original_language == "ja"
  local animated = has(item.genres, "animation") or has(metadata.genres, "animation")
  if not (japanese and animated) then return nil end

  item.is_anime = true
  item.tags = item.tags or {}
  if not has(item.tags, "anime") then table.insert(item.tags, "anime") end
  log.info("tagged as anime: " .. tostring(item.title))
  return event
end
