# configmgr.nap win_nap_firewall, state: rendered: the NetSecurity script's steps (ASCII only).
# Reads and compares through HNetCfg.FwPolicy2 (one pass; Get-NetFirewallPortFilter would add a query per
# rule), writes with New-NetFirewallRule / Set-NetFirewallRule / Remove-NetFirewallRule (by rule id).
# https://learn.microsoft.com/en-us/powershell/module/netsecurity/new-netfirewallrule
# https://learn.microsoft.com/en-us/powershell/module/netsecurity/set-netfirewallrule
# https://learn.microsoft.com/en-us/powershell/module/netsecurity/remove-netfirewallrule
# Order: read, refuse collisions, add and update, the lockout guard, then remove.

function ConvertTo-NapList {
    param ([string]$Text, [switch]$Ports)
    if ($Text -eq '' -or $Text -eq '*') { return 'Any' }
    $items = @()
    foreach ($item in $Text.Split(',')) {
        if ($Ports -and $item -eq 'RPC-EPMap') { $item = 'RPCEPMap' }
        $items += $item
    }
    , $items
}

function Get-NapParameters {
    param ($Spec)
    $parameters = @{ Description = $Spec.Description; Action = 'Allow'; Enabled = 'True' }
    if ($Spec.Direction -eq 1) { $parameters.Direction = 'Inbound' } else { $parameters.Direction = 'Outbound' }
    $protocols = @{ 6 = 'TCP'; 17 = 'UDP'; 1 = 'ICMPv4'; 58 = 'ICMPv6' }
    if ($protocols.ContainsKey($Spec.Protocol)) { $parameters.Protocol = $protocols[$Spec.Protocol] }
    else { $parameters.Protocol = [string]$Spec.Protocol }
    if ($Spec.Protocol -eq 6 -or $Spec.Protocol -eq 17) {
        $parameters.LocalPort = ConvertTo-NapList -Text $Spec.LocalPorts -Ports
        $parameters.RemotePort = ConvertTo-NapList -Text $Spec.RemotePorts -Ports
    }
    if ($Spec.Protocol -eq 1 -or $Spec.Protocol -eq 58) {
        # New-NetFirewallRule -IcmpType: the type (8 echo request on ICMPv4, 128 on ICMPv6), or Any
        if ($Spec.IcmpTypesAndCodes) { $parameters.IcmpType = $Spec.IcmpTypesAndCodes.Split(':')[0] }
        else { $parameters.IcmpType = 'Any' }
    }
    $parameters.LocalAddress = ConvertTo-NapList -Text $Spec.LocalAddresses
    $parameters.RemoteAddress = ConvertTo-NapList -Text $Spec.RemoteAddresses
    $mask = $Spec.Profiles -band 7
    if ($mask -eq 7) { $parameters.Profile = 'Any' }
    else {
        $profileNames = @()
        if ($mask -band 1) { $profileNames += 'Domain' }
        if ($mask -band 2) { $profileNames += 'Private' }
        if ($mask -band 4) { $profileNames += 'Public' }
        $parameters.Profile = $profileNames -join ', '
    }
    $parameters
}

$policy = New-Object -ComObject HNetCfg.FwPolicy2
if ($policy.LocalPolicyModifyState -ne 0) {
    Write-Output ('configmgr.nap: warning: LocalPolicyModifyState is ' + $policy.LocalPolicyModifyState +
        ': Group Policy overrides local rules or inbound is blocked; these rules may not take effect')
}
$state = Read-NapRules
if ($state.Collisions.Count -gt 0) {
    Write-Output ('configmgr.nap: STOPPED: rule(s) outside the group ' + $group + ' carry owned name(s): ' +
        ($state.Collisions -join ', ') + '. Rename or delete them; nothing was changed')
    exit 5
}
$added = 0
$updated = 0
$removals = New-Object -TypeName System.Collections.ArrayList
try {
    # rules to adopt (empty Grouping, a wanted name): the group is set through the COM object
    foreach ($name in $state.Order) {
        foreach ($have in $state.Owned[$name]) {
            if ([string]$have.Grouping -eq '') { $have.Grouping = $group }
        }
    }
    $ids = @{}
    foreach ($rule in @(Get-NetFirewallRule -Group $group -ErrorAction SilentlyContinue)) {
        if (-not $ids.ContainsKey($rule.DisplayName)) { $ids[$rule.DisplayName] = New-Object -TypeName System.Collections.ArrayList }
        [void]$ids[$rule.DisplayName].Add($rule.Name)
    }
    foreach ($spec in $wanted) {
        $parameters = Get-NapParameters -Spec $spec
        if (-not $state.Owned.ContainsKey($spec.Name)) {
            New-NetFirewallRule -Name $spec.Name -DisplayName $spec.Name -Group $group @parameters | Out-Null
            $added++
            Write-Output ('configmgr.nap: added ' + $spec.Name)
            continue
        }
        $want = New-NapComRule -Spec $spec
        $differences = @()
        foreach ($have in $state.Owned[$spec.Name]) {
            foreach ($property in @(Get-NapDifferences -Have $have -Want $want)) {
                if ($differences -notcontains $property) { $differences += $property }
            }
        }
        if ($differences.Count -eq 0) { continue }
        foreach ($id in $ids[$spec.Name]) {
            if ($differences -contains 'Protocol') {
                # ports back to any first: the protocol cannot change under them
                Set-NetFirewallRule -Name $id -LocalPort Any -RemotePort Any -ErrorAction SilentlyContinue
            }
            Set-NetFirewallRule -Name $id -NewDisplayName $spec.Name -Program Any -Service Any -InterfaceType Any `
                -EdgeTraversalPolicy Block @parameters
            $updated++
            Write-Output ('configmgr.nap: updated ' + $spec.Name + ' (' + ($differences -join ', ') + ')')
        }
    }
    foreach ($name in $state.Order) {
        $keep = 0
        foreach ($spec in $wanted) { if ($spec.Name -eq $name) { $keep = 1 } }
        $list = @($ids[$name])
        # every rule id of an unwanted name; the extra ids of a wanted one (all equal now)
        for ($i = $keep; $i -lt $list.Count; $i++) { [void]$removals.Add($list[$i]) }
    }
}
catch {
    Write-Output ('configmgr.nap: STOPPED after ' + $added + ' added and ' + $updated + ' updated: ' +
        $_.Exception.Message + '; nothing was removed. Run the script again to complete the change')
    exit 1
}
if ($removals.Count -gt 0 -and -not $SkipLockoutGuard) {
    $problem = Test-NapGuard
    if ($problem) {
        Write-Output ('configmgr.nap: STOPPED before removing ' + $removals.Count + ' rule(s): ' + $problem +
            '. Nothing was removed (' + $added + ' added, ' + $updated + ' updated); fix the rule, or run with -SkipLockoutGuard')
        exit 4
    }
}
$removed = 0
foreach ($id in $removals) {
    Remove-NetFirewallRule -Name $id
    $removed++
    Write-Output ('configmgr.nap: removed rule id ' + $id)
}
Write-Output ('configmgr.nap: ' + $added + ' added, ' + $updated + ' updated, ' + $removed + ' removed; ' +
    $wanted.Count + ' rule(s) in group ' + $group)
