[CmdletBinding(SupportsShouldProcess)]
param (
    [Parameter(Mandatory = $true)][string]$ProbesJson,
    [int]$Concurrency = 64,
    [int]$DeadlineMs = 60000,
    [string]$MinPsVersion = '5.1'
)
# configmgr.nap probe sender v1 (configmgr.nap.win_nap_port_probe). READ ONLY: opens client sockets, changes nothing.
# The controller builds every payload and judges every reply (module_utils/nap/probe_remote.py: remote_requests and
# remote_results over probe_engine.py's probe classes, the same code nap_port_probe runs on Linux); this script only connects, sends the given bytes and
# returns what came back, for all probes of the vantage in one call, at most $Concurrency at once, each with its own
# timeout, on non-blocking sockets polled in one loop.
# $ProbesJson: a JSON array of {Id, Protocol (tcp|udp), Address, Port, Mode (connect|exchange), Send (base64 payloads),
# Framing (none|u32), TimeoutMs}. Result ($Ansible.Result, ONE JSON string: win_powershell serialises objects only to
# depth 2): {sender, ps_version, supported, results: [{Id, Status, Replies (base64), TimeMs, Error}]}, Status one of
# open (TCP handshake), refused (TCP reset, or ICMP port unreachable for UDP), timeout (no answer in TimeoutMs),
# unreachable (ICMP host/network unreachable), replied (UDP datagrams, or the bytes of a TCP exchange), silent
# (TCP exchange: connected, nothing came back), error (the probe could not be made; Error says why).
# Windows behaviour relied on:
# - a connected UDP socket reports an ICMP port unreachable as WSAECONNRESET (10054) on the next receive:
#   "Windows Sockets Error Codes", https://learn.microsoft.com/en-us/windows/win32/winsock/windows-sockets-error-codes-2
#   and "WSAIoctl SIO_UDP_CONNRESET", https://learn.microsoft.com/en-us/windows/win32/winsock/winsock-ioctls
# - a non-blocking connect reports completion as writable and failure as an error condition of Socket.Poll:
#   "Socket.Poll(Int32, SelectMode) Method",
#   https://learn.microsoft.com/en-us/dotnet/api/system.net.sockets.socket.poll
# - Windows retries a SYN answered by a reset (about 1 s in all): a closed TCP port reads "refused" only when
#   TimeoutMs is longer than that, else "timeout" (both count as blocked).
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

$out = [ordered]@{
    sender = 1
    ps_version = $PSVersionTable.PSVersion.ToString()
    supported = $false
    results = @()
}
if ($PSVersionTable.PSVersion -lt [Version]$MinPsVersion) {
    $out.error = "cannot run the probe (PowerShell $($PSVersionTable.PSVersion)); it needs PowerShell $MinPsVersion"
    $Ansible.Result = ConvertTo-Json -InputObject $out -Depth 5 -Compress
    return
}
$out.supported = $true

$probes = @(ConvertFrom-Json -InputObject $ProbesJson)
$clock = [System.Diagnostics.Stopwatch]::StartNew()
$pending = New-Object 'System.Collections.Generic.Queue[object]'
foreach ($spec in $probes) {
    $pending.Enqueue($spec)
}
$active = New-Object 'System.Collections.Generic.List[object]'
$results = New-Object 'System.Collections.Generic.List[object]'

function Get-SocketErrorCode {
    param ($ErrorRecord)
    $exception = $ErrorRecord.Exception
    while ($null -ne $exception) {
        if ($exception -is [System.Net.Sockets.SocketException]) {
            return [int]$exception.ErrorCode
        }
        $exception = $exception.InnerException
    }
    return -1
}

function Get-StatusOfCode {
    param ([int]$Code)
    switch ($Code) {
        10061 { return 'refused' }       # WSAECONNREFUSED: TCP reset
        10054 { return 'refused' }       # WSAECONNRESET: ICMP port unreachable on a connected UDP socket
        10060 { return 'timeout' }       # WSAETIMEDOUT
        10065 { return 'unreachable' }   # WSAEHOSTUNREACH
        10051 { return 'unreachable' }   # WSAENETUNREACH
        default { return 'error' }
    }
}

function Complete-Probe {
    param ($State, [string]$Status, [string]$ErrorText = '')
    if ($null -ne $State.Socket) {
        $State.Socket.Close()
        $State.Socket = $null
    }
    $replies = @($State.Replies.ToArray())
    if ($State.Buffer.Length -gt 0) {
        $replies = @([Convert]::ToBase64String($State.Buffer.ToArray()))
    }
    $results.Add([ordered]@{
            Id = $State.Spec.Id
            Status = $Status
            Replies = $replies
            TimeMs = [Math]::Round($clock.Elapsed.TotalMilliseconds - $State.Started, 3)
            Error = $ErrorText
        })
    $State.Done = $true
}

function Start-Probe {
    param ($Spec)
    $state = @{
        Spec = $Spec
        Socket = $null
        Started = $clock.Elapsed.TotalMilliseconds
        Connected = $false
        Done = $false
        Buffer = New-Object System.IO.MemoryStream
        Replies = New-Object 'System.Collections.Generic.List[string]'
    }
    try {
        $address = [System.Net.IPAddress]::Parse([string]$Spec.Address)
        if ($Spec.Protocol -eq 'tcp') {
            $socket = New-Object System.Net.Sockets.Socket($address.AddressFamily, [System.Net.Sockets.SocketType]::Stream,
                [System.Net.Sockets.ProtocolType]::Tcp)
            $socket.LingerState = New-Object System.Net.Sockets.LingerOption($true, 0)
        }
        else {
            $socket = New-Object System.Net.Sockets.Socket($address.AddressFamily, [System.Net.Sockets.SocketType]::Dgram,
                [System.Net.Sockets.ProtocolType]::Udp)
        }
        $state.Socket = $socket
        $socket.Blocking = $false
    }
    catch {
        Complete-Probe -State $state -Status 'error' -ErrorText ("cannot open the socket: " + $_.Exception.Message)
        return $state
    }
    try {
        $socket.Connect($address, [int]$Spec.Port)
        if ($Spec.Protocol -eq 'udp') {
            $state.Connected = $true
            foreach ($payload in @($Spec.Send)) {
                [void]$socket.Send([Convert]::FromBase64String([string]$payload))
            }
        }
    }
    catch {
        $code = Get-SocketErrorCode -ErrorRecord $_
        if ($code -ne 10035) {
            # anything but WSAEWOULDBLOCK (a non-blocking connect in progress)
            Complete-Probe -State $state -Status (Get-StatusOfCode -Code $code) -ErrorText $_.Exception.Message
        }
    }
    return $state
}

function Read-Available {
    param ($State)
    $buffer = New-Object byte[] 65536
    while (-not $State.Done -and $State.Socket.Poll(0, [System.Net.Sockets.SelectMode]::SelectRead)) {
        try {
            $count = $State.Socket.Receive($buffer)
        }
        catch {
            $code = Get-SocketErrorCode -ErrorRecord $_
            if ($code -eq 10035) {
                return $false
            }
            if ($State.Spec.Protocol -eq 'tcp' -and $State.Buffer.Length -gt 0) {
                Complete-Probe -State $State -Status 'replied'
            }
            else {
                Complete-Probe -State $State -Status (Get-StatusOfCode -Code $code) -ErrorText $_.Exception.Message
            }
            return $true
        }
        if ($State.Spec.Protocol -eq 'udp') {
            $State.Replies.Add([Convert]::ToBase64String($buffer, 0, $count))
            continue
        }
        if ($count -eq 0) {
            # the peer closed the stream
            Complete-Probe -State $State -Status ($(if ($State.Buffer.Length -gt 0) { 'replied' } else { 'silent' }))
            return $true
        }
        $State.Buffer.Write($buffer, 0, $count)
        if ($State.Spec.Framing -eq 'u32' -and $State.Buffer.Length -ge 4) {
            $head = $State.Buffer.ToArray()
            $length = ([long]$head[0] -shl 24) + ([long]$head[1] -shl 16) + ([long]$head[2] -shl 8) + [long]$head[3]
            if ($State.Buffer.Length -ge (4 + $length)) {
                Complete-Probe -State $State -Status 'replied'
                return $true
            }
        }
    }
    if (-not $State.Done -and $State.Spec.Protocol -eq 'udp' -and $State.Replies.Count -gt 0) {
        Complete-Probe -State $State -Status 'replied'
        return $true
    }
    return $false
}

function Step-Probe {
    param ($State)
    $socket = $State.Socket
    if ($State.Spec.Protocol -eq 'tcp' -and -not $State.Connected) {
        if ($socket.Poll(0, [System.Net.Sockets.SelectMode]::SelectError)) {
            $code = [int]$socket.GetSocketOption([System.Net.Sockets.SocketOptionLevel]::Socket,
                [System.Net.Sockets.SocketOptionName]::Error)
            Complete-Probe -State $State -Status (Get-StatusOfCode -Code $code) -ErrorText ("socket error $code")
            return $true
        }
        if (-not $socket.Poll(0, [System.Net.Sockets.SelectMode]::SelectWrite)) {
            return $false
        }
        $State.Connected = $true
        if ($State.Spec.Mode -ne 'exchange') {
            Complete-Probe -State $State -Status 'open'
            return $true
        }
        try {
            foreach ($payload in @($State.Spec.Send)) {
                [void]$socket.Send([Convert]::FromBase64String([string]$payload))
            }
        }
        catch {
            Complete-Probe -State $State -Status 'silent' -ErrorText ("connected, sending failed: " + $_.Exception.Message)
            return $true
        }
        return $true
    }
    return (Read-Available -State $State)
}

while ($pending.Count -gt 0 -or $active.Count -gt 0) {
    if ($clock.Elapsed.TotalMilliseconds -ge $DeadlineMs) {
        break
    }
    while ($pending.Count -gt 0 -and $active.Count -lt $Concurrency) {
        $state = Start-Probe -Spec $pending.Dequeue()
        if (-not $state.Done) {
            $active.Add($state)
        }
    }
    $progress = $false
    $now = $clock.Elapsed.TotalMilliseconds
    foreach ($state in @($active)) {
        if (-not $state.Done -and (Step-Probe -State $state)) {
            $progress = $true
        }
        if (-not $state.Done -and ($now - $state.Started) -ge [double]$state.Spec.TimeoutMs) {
            if ($state.Spec.Protocol -eq 'tcp' -and $state.Connected) {
                Complete-Probe -State $state -Status ($(if ($state.Buffer.Length -gt 0) { 'replied' } else { 'silent' }))
            }
            else {
                Complete-Probe -State $state -Status 'timeout'
            }
        }
        if ($state.Done) {
            [void]$active.Remove($state)
        }
    }
    if (-not $progress) {
        Start-Sleep -Milliseconds 2
    }
}
foreach ($state in @($active)) {
    Complete-Probe -State $state -Status 'error' -ErrorText "the total deadline ($DeadlineMs ms) passed before the probe finished"
}
while ($pending.Count -gt 0) {
    $state = @{
        Spec = $pending.Dequeue()
        Socket = $null
        Started = $clock.Elapsed.TotalMilliseconds
        Buffer = New-Object System.IO.MemoryStream
        Replies = New-Object 'System.Collections.Generic.List[string]'
    }
    Complete-Probe -State $state -Status 'error' -ErrorText "not started: the total deadline ($DeadlineMs ms) passed"
}
$out.results = $results.ToArray()
$Ansible.Result = ConvertTo-Json -InputObject $out -Depth 5 -Compress
